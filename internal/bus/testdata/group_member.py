"""A confluent-kafka (librdkafka) consumer group member with the client's
default settings: partition.assignment.strategy "range,roundrobin",
enable.auto.commit and enable.auto.offset.store on.

Usage: group_member.py BOOTSTRAP GROUP TOPIC

Prints "PARTITION OFFSET VALUE" for every record it reads, and stops on
SIGINT or SIGTERM by closing the consumer, which commits the offsets it
stored and leaves the group. Assignment changes go to stderr; a consumer
error ends it with status 1.
"""

import signal
import sys

from confluent_kafka import Consumer


def main():
    bootstrap, group, topic = sys.argv[1:4]
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
    })
    running = [True]

    def stop(*_):
        running[0] = False

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    def assigned(_, parts):
        print("assigned", sorted(p.partition for p in parts), file=sys.stderr, flush=True)

    def revoked(_, parts):
        print("revoked", sorted(p.partition for p in parts), file=sys.stderr, flush=True)

    consumer.subscribe([topic], on_assign=assigned, on_revoke=revoked)
    try:
        while running[0]:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                # Any error (INCONSISTENT_GROUP_PROTOCOL, say) fails the
                # test at once, with the reason on stderr.
                print("error:", msg.error(), file=sys.stderr, flush=True)
                sys.exit(1)
            print(msg.partition(), msg.offset(), msg.value().decode(), flush=True)
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
