#define WINTUN_MAX_POOL (1 << 8
#define A B C
#if 0
stuff
#endif
typedef enum { WINTUN_LOG_INFO = 1 / 0 } WINTUN_LOGGER_LEVEL;
