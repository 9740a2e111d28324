/* Just enough of the Kafka wire protocol for the embedded broker's
 * forwarder: where a frame ends, which request a response answers, and the
 * broker ports in Metadata and FindCoordinator responses, which it points
 * at itself so that every client connection passes through it. */
#ifndef CONSUMER_KAFKA_WIRE_H
#define CONSUMER_KAFKA_WIRE_H

#include <stddef.h>
#include <stdint.h>

enum { KAFKA_PRODUCE = 0, KAFKA_METADATA = 3, KAFKA_FIND_COORDINATOR = 10 };

/* The length of the frame at the start of buf (its 4-byte size included),
 * or 0 while fewer than 4 bytes are there. */
size_t kafka_wire_frame_len(const unsigned char *buf, size_t len);

/* A request frame's api key, version and correlation id; -1 if too short. */
int kafka_wire_request(const unsigned char *frame, size_t len, int16_t *api_key,
                       int16_t *api_version, int32_t *correlation_id);

/* The acks a Produce request frame of api_version asks for (0: no answer
 * will come); -1 if it does not parse. */
int kafka_wire_produce_acks(const unsigned char *frame, size_t len, int16_t api_version,
                            int16_t *acks);

/* A response frame's correlation id; -1 if too short. */
int kafka_wire_response_id(const unsigned char *frame, size_t len, int32_t *correlation_id);

/* Sets every broker port in a Metadata or FindCoordinator response frame
 * of api_version to port, in place (the frame keeps its length). Returns
 * how many ports were set, or -1 when the frame does not parse (it is then
 * left as it was). */
int kafka_wire_set_ports(unsigned char *frame, size_t len, int16_t api_key, int16_t api_version,
                         int32_t port);

#endif
