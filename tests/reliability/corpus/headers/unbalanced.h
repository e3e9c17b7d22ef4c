typedef struct { DWORD Value; NET_LUID;
