/* A C loop over the Wintun ABI, for the benchmark's "physical limit" row: receive and release
 * every packet waiting in a session's Send ring, as a C tunnel would. */
#include <stddef.h>
#include <stdint.h>

typedef uint8_t *(*receive_fn)(void *session, uint32_t *size);
typedef void (*release_fn)(void *session, const uint8_t *packet);

long wintun_bench_drain(void *session, receive_fn receive, release_fn release)
{
    long packets = 0;
    uint32_t size;
    uint8_t *packet;
    while ((packet = receive(session, &size)) != NULL) {
        packet[0] ^= 0; /* touch the payload, as a reader would */
        release(session, packet);
        ++packets;
    }
    return packets;
}
