/*
 * wintun_double.c: a test double that exports the Wintun C ABI, for Linux and
 * for Windows (MinGW).
 *
 * Written for wintun-cffi from the project's own description of the protocol
 * (docs/protocol.rst in the repository); it contains no code from Wintun. Its purpose is to let the project's cffi native backend run
 * without the Wintun driver: the session functions implement the client side
 * of the ring protocol (docs/protocol.rst, "Receiving" and "Sending") over
 * real memory, while the kernel
 * side of the same rings is played by the project's Python emulator driver
 * (or by a test by hand), reached through the WintunDouble* helper exports.
 *
 * One source, three builds; choose with -DWINTUN_DOUBLE_API=...:
 *   WINTUN_DOUBLE_API_0_14  Wintun 0.14 / 0.14.1 export set
 *   WINTUN_DOUBLE_API_POOL  Wintun 0.9 - 0.13 (pool era) export set
 *   WINTUN_DOUBLE_API_SEED  the 2020-11 snapshot before 0.9
 *
 * Each build behaves as its generation's newest release (0.14.1, 0.13, the
 * snapshot). The rules that changed inside a generation are set at run time by
 * the tests (emulator/releases.py holds the table): the driver version with
 * WintunDoubleSetDriverVersion, the send signal with
 * WintunDoubleSetSignalUnmovedTail, whether EndSession signals the read-wait
 * event with WintunDoubleSetSignalAtEnd. WintunDoubleReset restores them.
 *
 * The operating system is behind the small platform layer below. On Windows
 * the double behaves as Windows code: its last error is SetLastError, its
 * events are auto-reset Win32 events, its locks SRW locks and a critical
 * section, and only __declspec(dllexport) names are exported. On Linux the
 * last error is errno, a HANDLE event is a non-blocking eventfd carried in
 * the pointer value, and only symbols marked EXPORT are visible (the library
 * is built with -fvisibility=hidden). Either way each build exports exactly
 * its generation's names plus the WintunDouble* helpers.
 */

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>
#endif
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WINTUN_DOUBLE_API_0_14 1
#define WINTUN_DOUBLE_API_POOL 2
#define WINTUN_DOUBLE_API_SEED 3

#ifndef WINTUN_DOUBLE_API
#error "define WINTUN_DOUBLE_API as WINTUN_DOUBLE_API_0_14, _POOL or _SEED"
#endif

#if WINTUN_DOUBLE_API == WINTUN_DOUBLE_API_0_14
#define API_0_14 1
#define API_NAME "0.14"
#define DEFAULT_DRIVER_VERSION 0x0000000Eu /* (0 << 16) | 14 */
#define DEFAULT_SIGNAL_UNMOVED_TAIL false
#define DEFAULT_SIGNAL_AT_END false
#elif WINTUN_DOUBLE_API == WINTUN_DOUBLE_API_POOL
#define API_POOL_ERA 1
#define API_NAME "pool"
#define DEFAULT_DRIVER_VERSION 0x0000000Du /* 0.13 */
#define DEFAULT_SIGNAL_UNMOVED_TAIL false /* 0.9.2 on */
#define DEFAULT_SIGNAL_AT_END false         /* 0.10.5 on */
#elif WINTUN_DOUBLE_API == WINTUN_DOUBLE_API_SEED
#define API_POOL_ERA 1
#define API_SEED 1
#define API_NAME "seed"
#define DEFAULT_DRIVER_VERSION 0x00000008u /* the snapshot's driver was still 0.8 */
#define DEFAULT_SIGNAL_UNMOVED_TAIL true
#define DEFAULT_SIGNAL_AT_END true
#else
#error "unknown WINTUN_DOUBLE_API"
#endif

/* ---- platform layer: types, exports, last error, locks, events ---------- */

#ifdef _WIN32

#define EXPORT __declspec(dllexport)
#define CALLBACK_ABI CALLBACK

typedef HANDLE event_t; /* an auto-reset Win32 event */
typedef SRWLOCK lock_t;

static inline void set_last_error(DWORD code) { SetLastError(code); }
static inline DWORD last_error(void) { return GetLastError(); }

static inline event_t event_create(void) { return CreateEventW(NULL, FALSE, FALSE, NULL); }
static inline bool event_valid(event_t e) { return e != NULL; }
static inline void event_signal(event_t e) { SetEvent(e); }
static inline void event_close(event_t e) { CloseHandle(e); }
static inline HANDLE event_handle(event_t e) { return e; }

static inline void lock_init(lock_t *l) { InitializeSRWLock(l); }
static inline void lock_acquire(lock_t *l) { AcquireSRWLockExclusive(l); }
static inline void lock_release(lock_t *l) { ReleaseSRWLockExclusive(l); }
static inline void lock_free(lock_t *l) { (void)l; }

/* Recursive: loggers, enum callbacks and hooks may call back into the API. */
static CRITICAL_SECTION g_lock;
static inline void global_lock(void) { EnterCriticalSection(&g_lock); }
static inline void global_unlock(void) { LeaveCriticalSection(&g_lock); }

/* 100 ns ticks since 1601-01-01 UTC. */
static inline uint64_t filetime_now(void)
{
    FILETIME ft;
    GetSystemTimePreciseAsFileTime(&ft);
    return ((uint64_t)ft.dwHighDateTime << 32) | ft.dwLowDateTime;
}

/* The seed's device object: a real handle (to NUL), closed with CloseHandle. */
static inline HANDLE device_object_open(void)
{
    return CreateFileW(L"NUL", GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE,
                       NULL, OPEN_EXISTING, 0, NULL);
}

BOOL WINAPI DllMain(HINSTANCE Instance, DWORD Reason, LPVOID Reserved)
{
    (void)Instance;
    (void)Reserved;
    if (Reason == DLL_PROCESS_ATTACH)
        InitializeCriticalSection(&g_lock);
    return TRUE;
}

#else /* Linux */

#define EXPORT __attribute__((visibility("default")))
#define CALLBACK_ABI

typedef uint16_t WCHAR;
typedef const WCHAR *LPCWSTR;
typedef uint32_t DWORD;
typedef uint64_t DWORD64;
typedef int BOOL;
typedef uint8_t BYTE;
typedef void *HANDLE;
typedef intptr_t LPARAM;
typedef struct {
    uint32_t Data1;
    uint16_t Data2;
    uint16_t Data3;
    uint8_t Data4[8];
} GUID;

#define TRUE 1
#define FALSE 0
#define INVALID_HANDLE_VALUE ((HANDLE)(intptr_t)-1)

enum {
    ERROR_FILE_NOT_FOUND = 2,
    ERROR_NOT_ENOUGH_MEMORY = 8,
    ERROR_INVALID_DATA = 13,
    ERROR_HANDLE_EOF = 38,
    ERROR_DUP_NAME = 52,
    ERROR_INVALID_PARAMETER = 87,
    ERROR_BUFFER_OVERFLOW = 111,
    ERROR_BUSY = 170,
    ERROR_ALREADY_EXISTS = 183,
    ERROR_NO_MORE_ITEMS = 259,
    ERROR_NOT_FOUND = 1168,
    ERROR_ALREADY_INITIALIZED = 1247,
};

typedef int event_t; /* a non-blocking eventfd */
typedef pthread_mutex_t lock_t;

/* errno is an int: codes of 0x80000000 and above are stored as negative ints. */
static inline void set_last_error(DWORD code) { errno = (int)code; }
static inline DWORD last_error(void) { return (DWORD)errno; }

static inline event_t event_create(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
static inline bool event_valid(event_t e) { return e >= 0; }
static inline void event_signal(event_t e)
{
    uint64_t one = 1;
    ssize_t w = write(e, &one, sizeof one);
    (void)w; /* EAGAIN only when the counter is saturated: still signalled */
}
static inline void event_close(event_t e) { close(e); }
static inline HANDLE event_handle(event_t e) { return (HANDLE)(intptr_t)e; }

static inline void lock_init(lock_t *l) { pthread_mutex_init(l, NULL); }
static inline void lock_acquire(lock_t *l) { pthread_mutex_lock(l); }
static inline void lock_release(lock_t *l) { pthread_mutex_unlock(l); }
static inline void lock_free(lock_t *l) { pthread_mutex_destroy(l); }

/* Recursive: loggers, enum callbacks and hooks may call back into the API. */
static pthread_mutex_t g_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static inline void global_lock(void) { pthread_mutex_lock(&g_lock); }
static inline void global_unlock(void) { pthread_mutex_unlock(&g_lock); }

/* 100 ns ticks since 1601-01-01 UTC, like NtQuerySystemTime. */
static inline uint64_t filetime_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec + 11644473600ull) * 10000000ull + (uint64_t)ts.tv_nsec / 100u;
}

/* The seed's device object: a real descriptor (of /dev/null), closed with close(). */
static inline HANDLE device_object_open(void)
{
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        set_last_error(ERROR_NOT_ENOUGH_MEMORY);
        return INVALID_HANDLE_VALUE;
    }
    return (HANDLE)(intptr_t)fd;
}

#endif

/* SetupAPI's ERROR_INF_IN_USE_BY_DEVICES (APPLICATION_ERROR_MASK |
 * ERROR_SEVERITY_ERROR | 0x23D): above 0x7FFFFFFF, like an HRESULT. */
#define INF_IN_USE_BY_DEVICES 0xE000023Du

/* ---- Wintun types ---------------------------------------------------------- */

typedef union {
    uint64_t Value;
} WINTUN_NET_LUID; /* NET_LUID */
typedef int WINTUN_LOGGER_LEVEL;
typedef struct handle *WINTUN_ADAPTER_HANDLE;
typedef struct session *WINTUN_SESSION_HANDLE;

enum { WINTUN_LOG_INFO = 0, WINTUN_LOG_WARN = 1, WINTUN_LOG_ERR = 2 };

#if defined(API_0_14)
typedef void(CALLBACK_ABI *WINTUN_LOGGER_CALLBACK)(WINTUN_LOGGER_LEVEL, DWORD64, LPCWSTR);
#elif defined(API_SEED)
typedef BOOL(CALLBACK_ABI *WINTUN_LOGGER_CALLBACK)(WINTUN_LOGGER_LEVEL, LPCWSTR);
#else
typedef void(CALLBACK_ABI *WINTUN_LOGGER_CALLBACK)(WINTUN_LOGGER_LEVEL, LPCWSTR);
#endif
typedef BOOL(CALLBACK_ABI *WINTUN_ENUM_CALLBACK)(WINTUN_ADAPTER_HANDLE, LPARAM);
typedef void (*WINTUN_DOUBLE_SESSION_HOOK)(WINTUN_SESSION_HANDLE);
/* The driver's answer to a session's rings: 0 to take them, else the Win32 error
 * WintunStartSession fails with. */
typedef DWORD (*WINTUN_DOUBLE_REGISTER_HOOK)(WINTUN_SESSION_HANDLE);

/* ---- constants (wintun_cffi/constants.py; docs/protocol.rst, "Layout") -- */

#define MAX_IP_PACKET_SIZE 0xFFFFu
#define MIN_RING_CAPACITY 0x20000u
#define MAX_RING_CAPACITY 0x4000000u
#define MAX_ADAPTER_NAME 128
#define MAX_POOL 256
#define RING_TRAILER (0x10000u) /* MAX_RECORD - 4 */
#define RELEASE_FLAG 0x80000000u
#define ALIGN4(n) (((n) + 3u) & ~3u)
#define IF_TYPE_PROP_VIRTUAL 53u

/* ---- global state -------------------------------------------------------- */

/* The adapter as the "system" knows it. Handles and sessions point at it; it
 * outlives its removal until the last of them is gone (refs). */
struct adapter {
    struct adapter *next;
    unsigned refs;   /* 1 while listed, +1 per handle, +1 per session */
    bool listed;     /* false once removed from the system */
    WCHAR name[MAX_ADAPTER_NAME];
#ifdef API_POOL_ERA
    WCHAR pool[MAX_POOL];
#else
    WCHAR tunnel_type[MAX_ADAPTER_NAME + 8];
#endif
    GUID guid;
    uint64_t luid;
    struct session *session;
};

#define HANDLE_MAGIC 0x57544841u /* catches a session passed as an adapter */
struct handle {
    uint32_t magic;
    struct adapter *adapter;
    bool creator; /* 0.14: closing this handle removes the adapter */
};

/* The Wintun ring header: the kernel side accesses the same words. */
struct ring {
    _Atomic uint32_t head;
    _Atomic uint32_t tail;
    _Atomic int32_t alertable;
    uint8_t data[];
};
_Static_assert(offsetof(struct ring, data) == 12, "ring header must be 12 bytes");
_Static_assert(sizeof(GUID) == 16, "GUID must be 16 bytes");

#define SESSION_MAGIC 0x57545353u
struct session {
    uint32_t magic;
    struct adapter *adapter;
    uint32_t capacity;
    uint32_t ring_size;
    uint8_t *region;
    struct ring *send;    /* driver -> application */
    struct ring *receive; /* application -> driver */
    event_t read_wait;    /* Send ring TailMoved */
    event_t receive_tail_moved;
    bool ended_hook_called;
    struct {
        lock_t lock;
        uint32_t head, head_release, to_release;
    } rx;
    struct {
        lock_t lock;
        uint32_t tail, tail_release, to_release;
    } tx;
};

static struct adapter *g_adapters;
static unsigned g_adapter_count;
static unsigned g_session_count;
static uint32_t g_next_luid_index = 1;
static uint32_t g_guid_counter;
static DWORD g_driver_version = DEFAULT_DRIVER_VERSION;
/* SendPacket signals an alertable driver even if Tail did not move (the
 * snapshot, 0.9 and 0.9.1); later releases signal only when it moved. */
static _Atomic bool g_signal_unmoved_tail = DEFAULT_SIGNAL_UNMOVED_TAIL;
/* EndSession signals the read-wait event first (the snapshot to 0.10.4). */
static _Atomic bool g_signal_at_end = DEFAULT_SIGNAL_AT_END;
static WINTUN_LOGGER_CALLBACK g_logger;
static WINTUN_DOUBLE_SESSION_HOOK g_on_start, g_on_end;
static WINTUN_DOUBLE_REGISTER_HOOK g_on_register;

/* ---- small UTF-16 helpers (ASCII case folding is enough for tests) ------- */

static size_t wlen(LPCWSTR s, size_t limit)
{
    size_t n = 0;
    while (n < limit && s[n])
        ++n;
    return n;
}

static WCHAR wfold(WCHAR c) { return (c >= 'A' && c <= 'Z') ? (WCHAR)(c + 32) : c; }

static bool wieq(LPCWSTR a, LPCWSTR b)
{
    for (;; ++a, ++b) {
        if (wfold(*a) != wfold(*b))
            return false;
        if (!*a)
            return true;
    }
}

/* A bounded UTF-16 string builder; `overflow` records truncation. */
struct wbuf {
    WCHAR *p;
    size_t cap, len;
    bool overflow;
};

static void wb_putc(struct wbuf *b, WCHAR c)
{
    if (b->len + 1 < b->cap)
        b->p[b->len++] = c;
    else
        b->overflow = true;
    b->p[b->len < b->cap ? b->len : b->cap - 1] = 0;
}
static void wb_puts(struct wbuf *b, const char *s)
{
    while (*s)
        wb_putc(b, (WCHAR)(unsigned char)*s++);
}
static void wb_putw(struct wbuf *b, LPCWSTR s)
{
    while (*s)
        wb_putc(b, *s++);
}
static void wb_putu(struct wbuf *b, unsigned v)
{
    char digits[16];
    int n = 0;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n)
        wb_putc(b, (WCHAR)digits[--n]);
}

/* ---- logging --------------------------------------------------------------- */

static void emit(int level, LPCWSTR message)
{
    WINTUN_LOGGER_CALLBACK cb = g_logger;
    if (!cb)
        return;
    DWORD saved = last_error(); /* the DLL preserves the last error across logging */
#if defined(API_0_14)
    cb(level, filetime_now(), message);
#else
    (void)cb(level, message); /* seed: BOOL result is ignored */
#endif
    set_last_error(saved);
}

/* Pool-era DLLs prefix messages with the function name; 0.14 does not.
 * `parts` alternates: 's' = ASCII char*, 'w' = LPCWSTR, 'u' = unsigned. */
static void logf_(int level, const char *func, const char *parts, ...)
{
    WCHAR text[512];
    struct wbuf b = { text, sizeof text / sizeof text[0], 0, false };
    text[0] = 0;
#ifdef API_POOL_ERA
    wb_puts(&b, func);
    wb_puts(&b, ": ");
#else
    (void)func;
#endif
    va_list ap;
    va_start(ap, parts);
    for (; *parts; ++parts) {
        if (*parts == 's')
            wb_puts(&b, va_arg(ap, const char *));
        else if (*parts == 'w')
            wb_putw(&b, va_arg(ap, LPCWSTR));
        else
            wb_putu(&b, va_arg(ap, unsigned));
    }
    va_end(ap);
    emit(level, text);
}

/* Set the last error and log it at ERR level, with the code in decimal. */
static void fail_log(DWORD code, const char *func, const char *what)
{
    logf_(WINTUN_LOG_ERR, func, "ssus", what, " (Code ", (unsigned)code, ")");
    set_last_error(code);
}

/* ---- adapter bookkeeping -------------------------------------------------- */

static void adapter_unref(struct adapter *a)
{
    if (--a->refs == 0)
        free(a);
}

static struct adapter *find_by_name(LPCWSTR name, const struct adapter *skip)
{
    for (struct adapter *a = g_adapters; a; a = a->next)
        if (a != skip && wieq(a->name, name))
            return a;
    return NULL;
}

static struct adapter *find_by_guid(const GUID *g)
{
    for (struct adapter *a = g_adapters; a; a = a->next)
        if (!memcmp(&a->guid, g, sizeof *g))
            return a;
    return NULL;
}

/* Too long a name is ERROR_BUFFER_OVERFLOW in 0.14 and ERROR_INVALID_PARAMETER
 * in the pool era (research notes Q6/Q10). */
#ifdef API_0_14
#define NAME_TOO_LONG ERROR_BUFFER_OVERFLOW
#else
#define NAME_TOO_LONG ERROR_INVALID_PARAMETER
#endif

/* Build "<base> <n>" into out; false if it does not fit MAX_ADAPTER_NAME. */
static bool numbered_name(WCHAR out[MAX_ADAPTER_NAME], LPCWSTR base, unsigned n)
{
    struct wbuf b = { out, MAX_ADAPTER_NAME, 0, false };
    out[0] = 0;
    wb_putw(&b, base);
    wb_putc(&b, ' ');
    wb_putu(&b, n);
    return !b.overflow;
}

/* Give `target` the name `name`. As the real DLLs do, a current holder of the
 * name is renamed to the first free "Name N" and the target takes the name;
 * if the holder cannot be renamed, the target gets the suffix instead.
 * Returns 0 or a Win32 error. */
static int assign_name(struct adapter *target, LPCWSTR name)
{
    size_t n = wlen(name, MAX_ADAPTER_NAME);
    if (n == 0)
        return ERROR_INVALID_PARAMETER;
    if (n >= MAX_ADAPTER_NAME)
        return NAME_TOO_LONG;
    struct adapter *holder = find_by_name(name, target);
    if (holder) {
        WCHAR candidate[MAX_ADAPTER_NAME];
        struct adapter *renamed = holder;
        for (unsigned i = 1;; ++i) {
            if (i > 1000)
                return ERROR_DUP_NAME;
            if (!numbered_name(candidate, name, i))
                return NAME_TOO_LONG;
            if (!find_by_name(candidate, target) && !wieq(candidate, target->name))
                break;
        }
        memcpy(renamed->name, candidate, sizeof candidate);
    }
    memcpy(target->name, name, (n + 1) * sizeof(WCHAR));
    return 0;
}

static void make_guid(GUID *g)
{
    /* Deterministic, unique, RFC 4122 v4-shaped. */
    uint32_t c = ++g_guid_counter;
    g->Data1 = 0x57d0b1e0u ^ c;
    g->Data2 = (uint16_t)(c >> 16);
    g->Data3 = 0x4000;
    memcpy(g->Data4, "\x80\x00WTDBL\x01", 8);
    g->Data4[7] = (uint8_t)c;
}

static struct handle *new_handle(struct adapter *a, bool creator)
{
    struct handle *h = calloc(1, sizeof *h);
    if (!h) {
        set_last_error(ERROR_NOT_ENOUGH_MEMORY);
        return NULL;
    }
    h->magic = HANDLE_MAGIC;
    h->adapter = a;
    h->creator = creator;
    ++a->refs;
    return h;
}

static void free_handle(struct handle *h)
{
    struct adapter *a = h->adapter;
    h->magic = 0;
    free(h);
    adapter_unref(a);
}

/* Hand the session over to its end hook, once: at removal or at EndSession,
 * whichever is first. The driver side marks the rings dead in that hook. */
static void session_terminate(struct session *s)
{
    if (s->ended_hook_called)
        return;
    s->ended_hook_called = true;
    WINTUN_DOUBLE_SESSION_HOOK hook = g_on_end;
    if (hook) {
        DWORD saved = last_error();
        hook(s);
        set_last_error(saved);
    }
}

/* Remove from the system; the record stays while handles/sessions use it. */
static void remove_adapter(struct adapter *a)
{
    if (!a->listed)
        return;
    if (a->session)
        session_terminate(a->session);
    for (struct adapter **pp = &g_adapters; *pp; pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    a->next = NULL;
    a->listed = false;
    --g_adapter_count;
    adapter_unref(a);
}

static struct adapter *create_adapter(LPCWSTR name, const GUID *requested, const char *func)
{
    struct adapter *a = calloc(1, sizeof *a);
    if (!a) {
        set_last_error(ERROR_NOT_ENOUGH_MEMORY);
        return NULL;
    }
    if (requested) {
        /* No tagged DLL checks this itself; the OS refuses a GUID in use and
         * that surfaces as ERROR_ALREADY_EXISTS (research notes Q10). */
        if (find_by_guid(requested)) {
            free(a);
            fail_log(ERROR_ALREADY_EXISTS, func, "Requested GUID is already in use");
            return NULL;
        }
        a->guid = *requested;
    } else {
        do
            make_guid(&a->guid);
        while (find_by_guid(&a->guid));
    }
    int err = assign_name(a, name);
    if (err) {
        free(a);
        fail_log(err, func, "Failed to set adapter name");
        return NULL;
    }
    a->luid = ((uint64_t)IF_TYPE_PROP_VIRTUAL << 48) |
              ((uint64_t)(g_next_luid_index++ & 0xFFFFFFu) << 24);
    a->refs = 1;
    a->listed = true;
    a->next = g_adapters;
    g_adapters = a;
    ++g_adapter_count;
    return a;
}

static struct adapter *adapter_of(WINTUN_ADAPTER_HANDLE h)
{
    return (h && h->magic == HANDLE_MAGIC) ? h->adapter : NULL;
}

static void log_driver(const char *func)
{
    /* The driver "loads" with the first adapter (research notes Q7). */
    logf_(WINTUN_LOG_INFO, func, "susu",
          g_adapter_count ? "Using existing driver " : "Installing driver ",
          g_driver_version >> 16, ".", g_driver_version & 0xFFFFu);
}

/* ---- exported adapter API ------------------------------------------------- */

#ifdef API_0_14

EXPORT WINTUN_ADAPTER_HANDLE WintunCreateAdapter(LPCWSTR Name, LPCWSTR TunnelType,
                                                 const GUID *RequestedGUID)
{
    if (!Name || !TunnelType) {
        set_last_error(ERROR_INVALID_PARAMETER);
        return NULL;
    }
    /* "<TunnelType> Tunnel" must fit WCHAR[MAX_ADAPTER_NAME + 8] with its NUL,
     * so 128 characters pass and 129 fail, silently (research notes Q10). */
    size_t tl = wlen(TunnelType, MAX_ADAPTER_NAME + 8);
    if (tl + 7 >= MAX_ADAPTER_NAME + 8) {
        set_last_error(ERROR_BUFFER_OVERFLOW);
        return NULL;
    }
    global_lock();
    log_driver("CreateAdapter");
    logf_(WINTUN_LOG_INFO, "CreateAdapter", "s", "Creating adapter");
    struct handle *h = NULL;
    struct adapter *a = create_adapter(Name, RequestedGUID, "CreateAdapter");
    if (a) {
        struct wbuf b = { a->tunnel_type, MAX_ADAPTER_NAME + 8, 0, false };
        wb_putw(&b, TunnelType);
        wb_puts(&b, " Tunnel");
        h = new_handle(a, true);
        if (!h)
            remove_adapter(a);
    }
    global_unlock();
    return h;
}

EXPORT WINTUN_ADAPTER_HANDLE WintunOpenAdapter(LPCWSTR Name)
{
    if (!Name) {
        set_last_error(ERROR_INVALID_PARAMETER);
        return NULL;
    }
    global_lock();
    struct handle *h = NULL;
    struct adapter *a = find_by_name(Name, NULL);
    if (a)
        h = new_handle(a, false);
    else
        fail_log(ERROR_NOT_FOUND, "OpenAdapter", "Failed to find matching adapter name");
    global_unlock();
    return h;
}

EXPORT void WintunCloseAdapter(WINTUN_ADAPTER_HANDLE Adapter)
{
    if (!Adapter)
        return; /* _In_opt_ */
    global_lock();
    if (Adapter->creator)
        remove_adapter(Adapter->adapter); /* SwDevice lifetime ends with its creator */
    free_handle(Adapter);
    global_unlock();
}

EXPORT BOOL WintunDeleteDriver(void)
{
    global_lock();
    BOOL ok = TRUE;
    /* Uninstalling the package fails while any adapter still uses it. */
    if (g_adapter_count) {
        fail_log(INF_IN_USE_BY_DEVICES, "DeleteDriver", "Failed to remove driver");
        ok = FALSE;
    }
    global_unlock();
    return ok;
}

#else /* pool era and seed */

static bool pool_ok(LPCWSTR Pool)
{
    size_t n = Pool ? wlen(Pool, MAX_POOL) : 0;
    return n > 0 && n < MAX_POOL;
}

EXPORT WINTUN_ADAPTER_HANDLE WintunCreateAdapter(LPCWSTR Pool, LPCWSTR Name,
                                                 const GUID *RequestedGUID, BOOL *RebootRequired)
{
    if (RebootRequired)
        *RebootRequired = FALSE;
    if (!Name || !pool_ok(Pool)) {
        set_last_error(ERROR_INVALID_PARAMETER);
        return NULL;
    }
    global_lock();
    logf_(WINTUN_LOG_INFO, "CreateAdapter", "s", "Creating adapter");
    log_driver("CreateAdapter");
    struct handle *h = NULL;
    struct adapter *a = create_adapter(Name, RequestedGUID, "CreateAdapter");
    if (a) {
        memcpy(a->pool, Pool, (wlen(Pool, MAX_POOL) + 1) * sizeof(WCHAR));
        h = new_handle(a, true);
        if (!h)
            remove_adapter(a);
    }
    global_unlock();
    return h;
}

static WINTUN_ADAPTER_HANDLE open_in_pool(LPCWSTR Pool, LPCWSTR Name, const char *func)
{
    if (!Name || !pool_ok(Pool)) {
        set_last_error(ERROR_INVALID_PARAMETER);
        return NULL;
    }
    global_lock();
    struct handle *h = NULL;
    struct adapter *a = find_by_name(Name, NULL);
    if (!a)
        set_last_error(ERROR_FILE_NOT_FOUND); /* the DLL does not log a miss */
    else if (!wieq(a->pool, Pool))
        fail_log(ERROR_ALREADY_EXISTS, func, "Adapter exists in another pool");
    else
        h = new_handle(a, false);
    global_unlock();
    return h;
}

#ifdef API_SEED
EXPORT WINTUN_ADAPTER_HANDLE WintunGetAdapter(LPCWSTR Pool, LPCWSTR Name)
{
    return open_in_pool(Pool, Name, "GetAdapter");
}

/* A real handle stands in for the device object (see device_object_open). */
EXPORT HANDLE WintunOpenAdapterDeviceObject(WINTUN_ADAPTER_HANDLE Adapter)
{
    struct adapter *a = adapter_of(Adapter);
    if (!a || !a->listed) {
        set_last_error(a ? ERROR_FILE_NOT_FOUND : ERROR_INVALID_PARAMETER);
        return INVALID_HANDLE_VALUE;
    }
    return device_object_open();
}
#else
EXPORT WINTUN_ADAPTER_HANDLE WintunOpenAdapter(LPCWSTR Pool, LPCWSTR Name)
{
    return open_in_pool(Pool, Name, "OpenAdapter");
}
#endif

EXPORT void WintunFreeAdapter(WINTUN_ADAPTER_HANDLE Adapter)
{
    if (!Adapter)
        return;
    global_lock();
    free_handle(Adapter);
    global_unlock();
}

/* Semantics chosen for the double (research notes Q3): the handle is not
 * freed; a removed adapter counts as success; with an open session and
 * ForceCloseSessions the session is terminated (as for a session owned by
 * another process) and the adapter removed; without it the removal is
 * "pending a reboot": the adapter leaves the system, the session keeps
 * working and *RebootRequired is TRUE. */
EXPORT BOOL WintunDeleteAdapter(WINTUN_ADAPTER_HANDLE Adapter, BOOL ForceCloseSessions,
                                BOOL *RebootRequired)
{
    if (RebootRequired)
        *RebootRequired = FALSE;
    struct adapter *a = adapter_of(Adapter);
    if (!a) {
        set_last_error(ERROR_INVALID_PARAMETER);
        return FALSE;
    }
    global_lock();
    if (a->listed) {
        logf_(WINTUN_LOG_INFO, "DeleteAdapter", "s", "Removing adapter");
        struct session *s = a->session;
        if (s && !ForceCloseSessions) {
            a->session = NULL; /* detach so remove_adapter leaves it running */
            remove_adapter(a);
            a->session = s;
            if (RebootRequired)
                *RebootRequired = TRUE;
        } else {
            remove_adapter(a);
        }
    }
    global_unlock();
    return TRUE;
}

EXPORT BOOL WintunEnumAdapters(LPCWSTR Pool, WINTUN_ENUM_CALLBACK Callback, LPARAM Param)
{
    if (!pool_ok(Pool) || !Callback) {
        set_last_error(ERROR_INVALID_PARAMETER);
        return FALSE;
    }
    global_lock();
    /* Snapshot first: the callback may create or delete adapters. */
    size_t n = 0;
    struct adapter **list = calloc(g_adapter_count + 1, sizeof *list);
    if (!list) {
        global_unlock();
        set_last_error(ERROR_NOT_ENOUGH_MEMORY);
        return FALSE;
    }
    for (struct adapter *a = g_adapters; a; a = a->next)
        if (wieq(a->pool, Pool)) {
            ++a->refs;
            list[n++] = a;
        }
    bool go_on = true;
    for (size_t i = 0; i < n; ++i) {
        if (go_on && list[i]->listed) {
            /* The handle is valid only during the callback. */
            struct handle *h = new_handle(list[i], false);
            if (h) {
                go_on = Callback(h, Param) != FALSE;
                free_handle(h);
            }
        }
        adapter_unref(list[i]);
    }
    free(list);
    global_unlock();
    set_last_error(0);
    return TRUE;
}

/* Removes the pool's adapters; uninstalling the driver then fails while
 * adapters of other pools remain (research notes Q4). */
EXPORT BOOL WintunDeletePoolDriver(LPCWSTR Pool, BOOL *RebootRequired)
{
    if (RebootRequired)
        *RebootRequired = FALSE;
    if (!pool_ok(Pool)) {
        set_last_error(ERROR_INVALID_PARAMETER);
        return FALSE;
    }
    global_lock();
    struct adapter *a = g_adapters;
    while (a) {
        struct adapter *next = a->next;
        if (wieq(a->pool, Pool))
            remove_adapter(a); /* always force-closes sessions */
        a = next;
    }
    BOOL ok = TRUE;
    if (g_adapter_count) {
        fail_log(INF_IN_USE_BY_DEVICES, "DeletePoolDriver", "Failed to remove driver");
        ok = FALSE;
    }
    global_unlock();
    return ok;
}

EXPORT BOOL WintunGetAdapterName(WINTUN_ADAPTER_HANDLE Adapter, WCHAR *Name)
{
    struct adapter *a = adapter_of(Adapter);
    if (!a || !Name) {
        set_last_error(ERROR_INVALID_PARAMETER);
        return FALSE;
    }
    global_lock();
    BOOL ok = a->listed;
    if (ok)
        memcpy(Name, a->name, (wlen(a->name, MAX_ADAPTER_NAME) + 1) * sizeof(WCHAR));
    else
        fail_log(ERROR_FILE_NOT_FOUND, "GetAdapterName", "Failed to get name");
    global_unlock();
    return ok;
}

EXPORT BOOL WintunSetAdapterName(WINTUN_ADAPTER_HANDLE Adapter, LPCWSTR Name)
{
    struct adapter *a = adapter_of(Adapter);
    if (!a || !Name) {
        set_last_error(ERROR_INVALID_PARAMETER);
        return FALSE;
    }
    global_lock();
    BOOL ok = FALSE;
    if (!a->listed) {
        fail_log(ERROR_FILE_NOT_FOUND, "SetAdapterName", "Failed to set adapter name");
    } else {
        int err = assign_name(a, Name);
        if (err)
            fail_log(err, "SetAdapterName",
                     err == ERROR_INVALID_PARAMETER ? "Adapter name too long"
                                                    : "Failed to set adapter name");
        ok = err == 0;
    }
    global_unlock();
    return ok;
}

#endif /* generation-specific adapter API */

EXPORT void WintunGetAdapterLUID(WINTUN_ADAPTER_HANDLE Adapter, WINTUN_NET_LUID *Luid)
{
    struct adapter *a = adapter_of(Adapter);
    if (a && Luid)
        Luid->Value = a->luid; /* cached: still answers for a removed adapter */
}

EXPORT DWORD WintunGetRunningDriverVersion(void)
{
    global_lock();
    DWORD v = g_adapter_count ? g_driver_version : 0;
    global_unlock();
    if (!v)
        set_last_error(ERROR_FILE_NOT_FOUND); /* wintun.sys not loaded */
    return v;
}

EXPORT void WintunSetLogger(WINTUN_LOGGER_CALLBACK NewLogger)
{
    g_logger = NewLogger;
}

/* ---- sessions ------------------------------------------------------------- */

static bool valid_capacity(DWORD c)
{
    return c >= MIN_RING_CAPACITY && c <= MAX_RING_CAPACITY && (c & (c - 1)) == 0;
}

EXPORT WINTUN_SESSION_HANDLE WintunStartSession(WINTUN_ADAPTER_HANDLE Adapter, DWORD Capacity)
{
    struct adapter *a = adapter_of(Adapter);
    if (!a) {
        set_last_error(ERROR_INVALID_PARAMETER);
        return NULL;
    }
    global_lock();
    struct session *s = NULL;
    int err = 0;
    /* Order follows the real path: device open, then the driver's checks. */
    if (!a->listed)
        err = ERROR_FILE_NOT_FOUND;
    else if (a->session)
        err = ERROR_ALREADY_INITIALIZED;
    else if (!valid_capacity(Capacity))
        err = ERROR_INVALID_PARAMETER;
    else if (!(s = calloc(1, sizeof *s)))
        err = ERROR_NOT_ENOUGH_MEMORY;
    if (err) {
        global_unlock();
        fail_log(err, "StartSession", "Failed to register rings");
        return NULL;
    }
    s->magic = SESSION_MAGIC;
    s->capacity = Capacity;
    s->ring_size = (uint32_t)sizeof(struct ring) + Capacity + RING_TRAILER;
    s->region = calloc(2, s->ring_size);
    s->read_wait = event_create();
    s->receive_tail_moved = event_create();
    if (!s->region || !event_valid(s->read_wait) || !event_valid(s->receive_tail_moved)) {
        if (event_valid(s->read_wait))
            event_close(s->read_wait);
        if (event_valid(s->receive_tail_moved))
            event_close(s->receive_tail_moved);
        free(s->region);
        free(s);
        global_unlock();
        fail_log(ERROR_NOT_ENOUGH_MEMORY, "StartSession", "Failed to allocate ring memory");
        return NULL;
    }
    s->send = (struct ring *)s->region;
    s->receive = (struct ring *)(s->region + s->ring_size);
    lock_init(&s->rx.lock);
    lock_init(&s->tx.lock);
    WINTUN_DOUBLE_REGISTER_HOOK judge = g_on_register;
    DWORD refused = judge ? judge(s) : 0;
    if (refused) { /* the driver refused the rings: nothing of the session stays */
        event_close(s->read_wait);
        event_close(s->receive_tail_moved);
        lock_free(&s->rx.lock);
        lock_free(&s->tx.lock);
        free(s->region);
        s->magic = 0;
        free(s);
        global_unlock();
        fail_log(refused, "StartSession", "Failed to register rings");
        return NULL;
    }
    s->adapter = a;
    ++a->refs;
    a->session = s;
    ++g_session_count;
    WINTUN_DOUBLE_SESSION_HOOK hook = g_on_start;
    if (hook)
        hook(s);
    global_unlock();
    return s;
}

EXPORT void WintunEndSession(WINTUN_SESSION_HANDLE Session)
{
    if (!Session)
        return;
    if (atomic_load_explicit(&g_signal_at_end, memory_order_relaxed))
        event_signal(Session->read_wait); /* wakes a reader still waiting */
    global_lock();
    session_terminate(Session);
    struct adapter *a = Session->adapter;
    if (a->session == Session)
        a->session = NULL;
    --g_session_count;
    adapter_unref(a);
    global_unlock();
    event_close(Session->read_wait);
    event_close(Session->receive_tail_moved);
    lock_free(&Session->rx.lock);
    lock_free(&Session->tx.lock);
    free(Session->region);
    Session->magic = 0;
    free(Session);
}

EXPORT HANDLE WintunGetReadWaitEvent(WINTUN_SESSION_HANDLE Session)
{
    return event_handle(Session->read_wait);
}

static inline uint32_t *size_at(struct ring *r, uint32_t offset)
{
    return (uint32_t *)(void *)(r->data + offset);
}

EXPORT BYTE *WintunReceivePacket(WINTUN_SESSION_HANDLE Session, DWORD *PacketSize)
{
    struct session *s = Session;
    const uint32_t mask = s->capacity - 1;
    BYTE *packet = NULL;
    int err = 0;
    lock_acquire(&s->rx.lock);
    uint32_t head = s->rx.head;
    uint32_t tail;
    if (head >= s->capacity)
        err = ERROR_HANDLE_EOF;
    else if ((tail = atomic_load_explicit(&s->send->tail, memory_order_acquire)) >= s->capacity)
        err = ERROR_HANDLE_EOF; /* the driver stopped using the ring */
    else if (head == tail)
        err = ERROR_NO_MORE_ITEMS;
    else {
        uint32_t content = (tail - head) & mask;
        uint32_t size = content < 4 ? 0 : *size_at(s->send, head);
        if (content < 4 || size > MAX_IP_PACKET_SIZE || ALIGN4(4 + size) > content)
            err = ERROR_INVALID_DATA; /* no state change: keeps failing */
        else {
            packet = s->send->data + head + 4;
            *PacketSize = size;
            s->rx.head = (head + ALIGN4(4 + size)) & mask;
            ++s->rx.to_release;
        }
    }
    lock_release(&s->rx.lock);
    if (err)
        set_last_error(err);
    return packet;
}

static void release_receive(WINTUN_SESSION_HANDLE Session, const BYTE *Packet)
{
    struct session *s = Session;
    const uint32_t mask = s->capacity - 1;
    lock_acquire(&s->rx.lock);
    uint32_t *record = (uint32_t *)(void *)(Packet - 4);
    *record |= RELEASE_FLAG;
    /* Space returns to the driver only up to the first unreleased packet. */
    while (s->rx.to_release) {
        uint32_t size = *size_at(s->send, s->rx.head_release);
        if (!(size & RELEASE_FLAG))
            break;
        size &= ~RELEASE_FLAG;
        s->rx.head_release = (s->rx.head_release + ALIGN4(4 + size)) & mask;
        --s->rx.to_release;
    }
    atomic_store_explicit(&s->send->head, s->rx.head_release, memory_order_release);
    lock_release(&s->rx.lock);
}

#ifdef API_SEED
EXPORT void WintunReceiveRelease(WINTUN_SESSION_HANDLE Session, const BYTE *Packet)
{
    release_receive(Session, Packet);
}
#else
EXPORT void WintunReleaseReceivePacket(WINTUN_SESSION_HANDLE Session, const BYTE *Packet)
{
    release_receive(Session, Packet);
}
#endif

/* Like every tagged Wintun DLL, this does NOT check PacketSize <= 0xFFFF, and
 * ALIGN4(4 + PacketSize) wraps in 32 bits: an oversized request can hand out
 * memory past the ring. The Python layers refuse such sizes before calling. */
EXPORT BYTE *WintunAllocateSendPacket(WINTUN_SESSION_HANDLE Session, DWORD PacketSize)
{
    struct session *s = Session;
    const uint32_t mask = s->capacity - 1;
    BYTE *packet = NULL;
    int err = 0;
    lock_acquire(&s->tx.lock);
    uint32_t tail = s->tx.tail;
    uint32_t head;
    uint32_t aligned = ALIGN4(4u + PacketSize);
    if (tail >= s->capacity)
        err = ERROR_HANDLE_EOF;
    else if ((head = atomic_load_explicit(&s->receive->head, memory_order_acquire)) >= s->capacity)
        err = ERROR_HANDLE_EOF; /* the driver stopped using the ring */
    else if (aligned > ((head - tail - 4) & mask))
        err = ERROR_BUFFER_OVERFLOW;
    else {
        *size_at(s->receive, tail) = PacketSize | RELEASE_FLAG;
        packet = s->receive->data + tail + 4;
        s->tx.tail = (tail + aligned) & mask;
        ++s->tx.to_release;
    }
    lock_release(&s->tx.lock);
    if (err)
        set_last_error(err);
    return packet;
}

EXPORT void WintunSendPacket(WINTUN_SESSION_HANDLE Session, const BYTE *Packet)
{
    struct session *s = Session;
    const uint32_t mask = s->capacity - 1;
    lock_acquire(&s->tx.lock);
    uint32_t *record = (uint32_t *)(void *)(Packet - 4);
    *record &= ~RELEASE_FLAG;
    /* Publish in allocation order: stop at the first packet not yet sent. */
    while (s->tx.to_release) {
        uint32_t size = *size_at(s->receive, s->tx.tail_release);
        if (size & RELEASE_FLAG)
            break;
        s->tx.tail_release = (s->tx.tail_release + ALIGN4(4 + size)) & mask;
        --s->tx.to_release;
    }
    if (atomic_load_explicit(&g_signal_unmoved_tail, memory_order_relaxed) ||
        atomic_load_explicit(&s->receive->tail, memory_order_relaxed) != s->tx.tail_release) {
        atomic_store_explicit(&s->receive->tail, s->tx.tail_release, memory_order_release);
        /* Pairs with the driver's fence between setting Alertable and
         * re-reading Tail, so one of the two always sees the other. */
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load_explicit(&s->receive->alertable, memory_order_relaxed))
            event_signal(s->receive_tail_moved);
    }
    lock_release(&s->tx.lock);
}

/* ---- WintunDouble* helpers for tests -------------------------------------- */

EXPORT BOOL WintunDoubleGetSessionRings(WINTUN_SESSION_HANDLE Session, void **SendRing,
                                        void **ReceiveRing, DWORD *RingSize, DWORD *Capacity,
                                        HANDLE *ReadWaitEvent, HANDLE *ReceiveTailMovedEvent)
{
    if (!Session || Session->magic != SESSION_MAGIC) {
        set_last_error(ERROR_INVALID_PARAMETER);
        return FALSE;
    }
    if (SendRing)
        *SendRing = Session->send;
    if (ReceiveRing)
        *ReceiveRing = Session->receive;
    if (RingSize)
        *RingSize = Session->ring_size;
    if (Capacity)
        *Capacity = Session->capacity;
    if (ReadWaitEvent)
        *ReadWaitEvent = event_handle(Session->read_wait);
    if (ReceiveTailMovedEvent)
        *ReceiveTailMovedEvent = event_handle(Session->receive_tail_moved);
    return TRUE;
}

/* OnRegister judges each session's rings before WintunStartSession returns (NULL:
 * every session is taken); see WINTUN_DOUBLE_REGISTER_HOOK. */
EXPORT void WintunDoubleSetRegisterHook(WINTUN_DOUBLE_REGISTER_HOOK OnRegister)
{
    global_lock();
    g_on_register = OnRegister;
    global_unlock();
}

EXPORT void WintunDoubleSetSignalAtEnd(BOOL Signal)
{
    atomic_store(&g_signal_at_end, Signal != FALSE);
}

EXPORT void WintunDoubleSetSessionHooks(WINTUN_DOUBLE_SESSION_HOOK OnStart,
                                        WINTUN_DOUBLE_SESSION_HOOK OnEnd)
{
    global_lock();
    g_on_start = OnStart;
    g_on_end = OnEnd;
    global_unlock();
}

/* What the driver does when it stops using a session's rings (docs/protocol.rst,
 * "Sessions and events"), for tests that play the kernel without the emulator. */
EXPORT void WintunDoubleMarkDead(WINTUN_SESSION_HANDLE Session)
{
    atomic_store_explicit(&Session->receive->head, 0xFFFFFFFFu, memory_order_release);
    atomic_store_explicit(&Session->send->tail, 0xFFFFFFFFu, memory_order_release);
    event_signal(Session->read_wait);
}

/* Removes every adapter and restores the defaults (driver version, send
 * signal rule, LUID and GUID counters); keeps the logger and the session hooks. Refused with
 * ERROR_BUSY while a session is open. Handles still open become stale. */
EXPORT BOOL WintunDoubleReset(void)
{
    global_lock();
    BOOL ok = g_session_count == 0;
    if (ok) {
        while (g_adapters)
            remove_adapter(g_adapters);
        g_next_luid_index = 1;
        g_guid_counter = 0;
        g_driver_version = DEFAULT_DRIVER_VERSION;
        atomic_store(&g_signal_unmoved_tail, DEFAULT_SIGNAL_UNMOVED_TAIL);
        atomic_store(&g_signal_at_end, DEFAULT_SIGNAL_AT_END);
    }
    global_unlock();
    if (!ok)
        set_last_error(ERROR_BUSY);
    return ok;
}

EXPORT void WintunDoubleLog(int Level, LPCWSTR Message)
{
    if (Message)
        emit(Level, Message);
}

EXPORT DWORD WintunDoubleAdapterCount(void)
{
    global_lock();
    DWORD n = g_adapter_count;
    global_unlock();
    return n;
}

EXPORT DWORD WintunDoubleSessionCount(void)
{
    global_lock();
    DWORD n = g_session_count;
    global_unlock();
    return n;
}

EXPORT const char *WintunDoubleApi(void)
{
    return API_NAME;
}

EXPORT void WintunDoubleSetDriverVersion(DWORD Version)
{
    global_lock();
    g_driver_version = Version ? Version : DEFAULT_DRIVER_VERSION;
    global_unlock();
}

EXPORT void WintunDoubleSetSignalUnmovedTail(BOOL Signal)
{
    atomic_store(&g_signal_unmoved_tail, Signal != FALSE);
}

/* The adapter's current name, GUID and whether it is still in the system
 * (every generation; 0.14 has no name getter of its own). */
EXPORT BOOL WintunDoubleGetAdapterInfo(WINTUN_ADAPTER_HANDLE Adapter, WCHAR *Name, GUID *Guid,
                                       BOOL *Present)
{
    struct adapter *a = adapter_of(Adapter);
    if (!a) {
        set_last_error(ERROR_INVALID_PARAMETER);
        return FALSE;
    }
    global_lock();
    if (Name)
        memcpy(Name, a->name, (wlen(a->name, MAX_ADAPTER_NAME) + 1) * sizeof(WCHAR));
    if (Guid)
        *Guid = a->guid;
    if (Present)
        *Present = a->listed;
    global_unlock();
    return TRUE;
}
