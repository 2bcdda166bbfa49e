#!/usr/bin/python3
"""people: a weir chunk engine over Kafka that finds people in frames.

It consumes media_chunk messages (image/jpeg frames) from its work topic in
its consumer group, runs OpenCV's built-in HOG people detector on each, and
writes to the job's results topic, results_<jobId>:

  engine_output           a vtn-standard document, one series entry per
                          person (label "person", boundingPoly normalised to
                          0..1, times on the TDO timeline), when it found any
  chunk_processed_status  SUCCESS, IGNORED (a MIME type it does not read) or
                          ERROR (with the reason)
  engine_heartbeat        every 5 s while it has chunks of the job

Offsets are committed only once a chunk's messages are written, so a crash
means a chunk is answered again, never lost (at-least-once).

It needs only Debian's python3-confluent-kafka, python3-opencv and
python3-numpy. Run it with Debian's interpreter and a librdkafka properties
file (what `weir bus users add NAME --engine people --output FILE` writes):

  /usr/bin/python3 people_engine.py --config people.conf
"""

import argparse
import base64
import binascii
import json
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

# Refuse to decode frames over 40 megapixels (an 8K frame is 33): a small
# hostile JPEG could otherwise claim gigabytes. OpenCV reads this once.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(40_000_000))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402

ENGINE = "people"
READS = ("image/jpeg",)
OUTPUT_TYPE = "object"
HEARTBEAT_INTERVAL = 5.0  # seconds, protocol.HeartbeatInterval
ACTIVE_FOR = 3 * HEARTBEAT_INTERVAL  # a job is worked on while a chunk came this recently
MAX_FETCH_BYTES = 64 << 20
FETCH_TIMEOUT = 30.0
RETRY_DELAY = 2.0  # seconds before a chunk whose answer could not be written is tried again

# Options a task may give in taskPayload, as in manifest.yaml:
# name -> (type, default, min, max).
OPTIONS = {
    "hit_threshold": (float, 0.0, -2.0, 10.0),
    "scale": (float, 1.05, 1.01, 2.0),
    "win_stride": (int, 8, 4, 64),
}

log = logging.getLogger(ENGINE)


class Unanswerable(Exception):
    """A record that cannot be answered at all: not a media_chunk, or one
    without the jobId and chunkUUID an answer needs."""


class ChunkError(Exception):
    """A chunk that is answered ERROR with this message."""


class Ignored(Exception):
    """A chunk that is answered IGNORED with this message."""


# --- protocol ------------------------------------------------------------

def now_ms():
    return int(time.time() * 1000)


def _legal(b):
    c = chr(b)
    return c.isascii() and (c.isalnum() or c in "._-")


def topic_name(prefix, ident):
    """protocol.TopicName: prefix + ident with every character Kafka does
    not allow replaced by "_", and a name longer than 249 characters cut and
    ended with a hash (FNV-1a 64) of the id."""
    raw = ident.encode("utf-8", "surrogatepass")
    name = prefix + "".join(chr(b) if _legal(b) else "_" for b in raw)
    if len(name) <= 249:
        return name
    h = 0xcbf29ce484222325
    for b in raw:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    suffix = "_%016x" % h
    return name[:249 - len(suffix)] + suffix


def results_topic(job_id):
    return topic_name("results_", job_id)


def parse_chunk(value):
    """Parses a record's value as a media_chunk. Raises Unanswerable when
    no answer can be addressed, ChunkError when the chunk is wrong but can
    be answered (the chunk is then in the exception's chunk attribute)."""
    try:
        msg = json.loads(value)
    except (ValueError, TypeError) as e:
        raise Unanswerable("value is not JSON: %s" % e)
    if not isinstance(msg, dict):
        raise Unanswerable("value is not a JSON object")
    if msg.get("type") != "media_chunk":
        raise Unanswerable("type is %r, not media_chunk" % (msg.get("type"),))
    for field in ("jobId", "chunkUUID"):
        if not isinstance(msg.get(field), str) or not msg[field]:
            raise Unanswerable("media_chunk without %s: no results topic or chunk to answer" % field)
    try:
        check_chunk(msg)
    except ChunkError as e:
        e.chunk = msg
        raise
    return msg


def check_chunk(msg):
    """Checks the members the engine uses, as protocol.MediaChunk.Validate."""
    for field in ("taskId", "tdoId", "mimeType", "cacheURI", "content", "contentEncoding"):
        if field in msg and not isinstance(msg[field], str):
            raise ChunkError("media_chunk: field %r must be a string" % field)
    for field in ("startOffsetMs", "endOffsetMs", "chunkIndex", "width", "height"):
        v = msg.get(field, 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ChunkError("media_chunk: field %r must be a whole number >= 0, got %r" % (field, v))
    if msg.get("endOffsetMs", 0) < msg.get("startOffsetMs", 0):
        raise ChunkError("media_chunk: endOffsetMs is before startOffsetMs")
    if not msg.get("mimeType"):
        raise ChunkError("media_chunk: field 'mimeType' is required")
    if bool(msg.get("cacheURI")) == bool(msg.get("content")):
        raise ChunkError("media_chunk: exactly one of cacheURI and content must be set")
    if msg.get("contentEncoding", "") not in ("", "base64"):
        raise ChunkError("media_chunk: contentEncoding must be \"base64\" or absent, got %r" % msg["contentEncoding"])
    payload = msg.get("taskPayload")
    if payload is not None and not isinstance(payload, dict):
        raise ChunkError("media_chunk: taskPayload must be a JSON object")


def header(chunk, kind):
    """The members every message shares, copied from the chunk."""
    return {"type": kind, "timestampUTC": now_ms(), "taskId": chunk.get("taskId", ""),
            "tdoId": chunk.get("tdoId", ""), "jobId": chunk.get("jobId", "")}


def status_message(chunk, status, error="", info=""):
    """A chunk_processed_status answering chunk; its key is taskId, or
    chunkUUID when there is none (protocol.KeyFor)."""
    m = header(chunk, "chunk_processed_status")
    m.update({"chunkUUID": chunk["chunkUUID"], "status": status})
    if error:
        m["errorMsg"] = error
    if info:
        m["infoMsg"] = info
    return m["taskId"] or m["chunkUUID"], m


def output_message(chunk, doc):
    """An engine_output carrying doc for chunk; its key is taskId."""
    m = header(chunk, "engine_output")
    m.update({"outputType": OUTPUT_TYPE, "mimeType": "application/json",
              "startOffsetMs": chunk.get("startOffsetMs", 0), "endOffsetMs": chunk.get("endOffsetMs", 0),
              "content": doc, "rev": 0, "chunkUUID": chunk["chunkUUID"]})
    return m["taskId"], m


# --- the work ------------------------------------------------------------

def parse_options(payload):
    """The option values of a task payload, defaults filled in. Values of
    the wrong type or out of bounds are a ChunkError naming the option."""
    payload = payload or {}
    opts = {}
    for name, (kind, default, lo, hi) in OPTIONS.items():
        v = payload.get(name, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ChunkError("option %r: want a number, got %r" % (name, v))
        if kind is int and v != int(v):
            raise ChunkError("option %r: want an integer, got %r" % (name, v))
        v = kind(v)
        if not lo <= v <= hi:
            raise ChunkError("option %r: must be between %s and %s, got %s" % (name, lo, hi, v))
        opts[name] = v
    return opts


def chunk_bytes(chunk, token):
    """The chunk's media: inline content (base64 when contentEncoding says
    so) or an HTTP GET of cacheURI, with a bearer token when one is set."""
    if chunk.get("content"):
        if chunk.get("contentEncoding") == "base64":
            try:
                return base64.b64decode(chunk["content"], validate=True)
            except (binascii.Error, ValueError) as e:
                raise ChunkError("content is not valid base64: %s" % e)
        return chunk["content"].encode()
    uri = chunk["cacheURI"]
    if not uri.startswith(("http://", "https://")):
        raise ChunkError("cacheURI %r: only http and https URIs can be fetched" % uri)
    req = urllib.request.Request(uri, headers={"User-Agent": "weir-people-engine/1"})
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=FETCH_TIMEOUT) as resp:
            data = resp.read(MAX_FETCH_BYTES + 1)
    except urllib.error.HTTPError as e:
        raise ChunkError("GET %s: HTTP %d %s" % (uri, e.code, e.reason))
    except (urllib.error.URLError, OSError) as e:
        raise ChunkError("GET %s: %s" % (uri, getattr(e, "reason", e)))
    if len(data) > MAX_FETCH_BYTES:
        raise ChunkError("GET %s: more than %d bytes" % (uri, MAX_FETCH_BYTES))
    return data


class Detector:
    """OpenCV's HOG descriptor with its built-in people detector."""

    def __init__(self):
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def people(self, data, opts):
        """Returns (x0, y0, x1, y1, confidence) per person, corners as
        fractions of the frame, most confident first."""
        try:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        except cv2.error as e:  # over OPENCV_IO_MAX_IMAGE_PIXELS, among others
            raise ChunkError("cannot decode the chunk: %s" % str(e).strip().splitlines()[-1])
        if image is None:
            raise ChunkError("chunk is %d bytes that are not a decodable JPEG" % len(data))
        height, width = image.shape[:2]
        stride = opts["win_stride"]
        rects, weights = self.hog.detectMultiScale(
            image, hitThreshold=opts["hit_threshold"], winStride=(stride, stride),
            padding=(8, 8), scale=opts["scale"])
        found = []
        for (x, y, w, h), score in zip(rects, np.ravel(weights)):
            # The SVM's margin, squashed into 0..1: 0.5 at the decision
            # boundary (hit_threshold 0), near 1 for clear detections.
            confidence = 1.0 / (1.0 + math.exp(-float(score)))
            found.append((clamp(x / width), clamp(y / height), clamp((x + w) / width),
                          clamp((y + h) / height), round(confidence, 4)))
        found.sort(key=lambda f: -f[4])
        return found


def clamp(v):
    return round(min(max(float(v), 0.0), 1.0), 5)


def document(chunk, people):
    """The vtn-standard document of people found in chunk: one series entry
    per person spanning the chunk, on the TDO timeline."""
    start, stop = chunk.get("startOffsetMs", 0), chunk.get("endOffsetMs", 0)
    series = [{
        "startTimeMs": start, "stopTimeMs": stop,
        "object": {"type": "object", "label": "person", "confidence": conf,
                   "boundingPoly": [{"x": x0, "y": y0}, {"x": x1, "y": y0},
                                    {"x": x1, "y": y1}, {"x": x0, "y": y1}]},
    } for (x0, y0, x1, y1, conf) in people]
    return {"sourceEngineName": ENGINE, "taskId": chunk.get("taskId", ""), "series": series}


# --- the engine ----------------------------------------------------------

class Stats:
    """An instance's cumulative counters and the jobs it works for."""

    def __init__(self):
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.count = 0
        self.bytes_read = 0
        self.bytes_written = 0
        self.messages_written = 0
        self.jobs = {}  # jobId -> {"chunk": last chunk, "seen": t, "beat": t of last heartbeat}


class Engine:
    """Consumes chunks, answers them and keeps the heartbeats going."""

    def __init__(self, props, topic, group, engine_id, instance_id, token):
        # Defaults the properties file may change, then what the engine
        # relies on: its group, and commits only when it says so.
        base = dict({"client.id": instance_id, "error_cb": self.on_error,
                     "logger": logging.getLogger(ENGINE + ".librdkafka")}, **props)
        self.consumer = Consumer(dict(
            {"auto.offset.reset": "earliest",
             # the work topic may be created after the engine starts
             "topic.metadata.refresh.interval.ms": 5000,
             # an instance that dies loses its chunks to the others after
             # three heartbeat intervals, as weir marks engines down
             "session.timeout.ms": 15000},
            **base, **{"group.id": group, "enable.auto.commit": False, "enable.auto.offset.store": False}))
        self.producer = Producer(dict({"acks": "all", "linger.ms": 5}, **base))
        self.topic, self.engine_id, self.instance_id, self.token = topic, engine_id, instance_id, token
        self.detector = Detector()
        self.stats = Stats()
        self.stop = threading.Event()

    def on_error(self, err):
        log.warning("kafka: %s", err)
        if err.fatal():
            log.error("kafka: fatal error, stopping")
            self.stop.set()

    def run(self):
        log.info("engine %s instance %s consuming %s", self.engine_id, self.instance_id, self.topic)
        self.consumer.subscribe([self.topic])
        beats = threading.Thread(target=self.heartbeats, name="heartbeats", daemon=True)
        beats.start()
        try:
            while not self.stop.is_set():
                msg = self.consumer.poll(0.5)
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        log.warning("consume: %s", msg.error())
                    continue
                self.handle(msg)
        finally:
            self.stop.set()
            self.consumer.close()
            self.producer.flush(10)
            log.info("stopped")

    def handle(self, msg):
        """Answers one record, then commits it; a record whose answer could
        not be written is read again after a pause."""
        where = "%s[%d]@%d" % (msg.topic(), msg.partition(), msg.offset())
        try:
            answers = self.answer(msg.value() or b"", where)
        except Exception:  # a bug here must not stop the engine
            log.exception("%s: unexpected failure; the record is skipped", where)
            answers = []
        if answers and not self.write(answers):
            log.warning("%s: answers not written; reading the chunk again in %.0f s", where, RETRY_DELAY)
            self.consumer.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))
            self.stop.wait(RETRY_DELAY)
            return
        try:
            self.consumer.commit(message=msg, asynchronous=False)
        except Exception as e:  # a lost commit means the chunk is answered twice, not lost
            log.warning("%s: commit failed: %s", where, e)

    def answer(self, value, where):
        """Returns the (topic, key, message) answers to one record."""
        try:
            chunk = parse_chunk(value)
        except Unanswerable as e:
            log.warning("%s: skipping a record that cannot be answered: %s", where, e)
            return []
        except ChunkError as e:
            log.warning("%s: chunk %s: %s", where, e.chunk.get("chunkUUID"), e)
            return [self.addressed(e.chunk, status_message(e.chunk, "ERROR", error=str(e)))]
        self.track(chunk)
        uuid_ = chunk["chunkUUID"]
        try:
            mime = chunk["mimeType"].split(";")[0].strip().lower()
            if mime not in READS:
                raise Ignored("mimeType %r is not one this engine reads (%s)" % (chunk["mimeType"], ", ".join(READS)))
            opts = parse_options(chunk.get("taskPayload"))
            data = chunk_bytes(chunk, self.token)
            with self.stats.lock:
                self.stats.bytes_read += len(data)
            people = self.detector.people(data, opts)
        except Ignored as e:
            log.info("%s: chunk %s ignored: %s", where, uuid_, e)
            return [self.addressed(chunk, status_message(chunk, "IGNORED", info=str(e)))]
        except ChunkError as e:
            log.warning("%s: chunk %s: %s", where, uuid_, e)
            return [self.addressed(chunk, status_message(chunk, "ERROR", error=str(e)))]
        except Exception as e:
            log.exception("%s: chunk %s failed", where, uuid_)
            return [self.addressed(chunk, status_message(chunk, "ERROR", error="detection failed: %s" % e))]
        log.info("%s: chunk %s (%d..%d ms): %d people", where, uuid_,
                 chunk.get("startOffsetMs", 0), chunk.get("endOffsetMs", 0), len(people))
        answers = []
        if people:
            answers.append(self.addressed(chunk, output_message(chunk, document(chunk, people))))
        answers.append(self.addressed(chunk, status_message(chunk, "SUCCESS")))
        return answers

    @staticmethod
    def addressed(chunk, keyed):
        key, message = keyed
        return results_topic(chunk["jobId"]), key, message

    def write(self, answers):
        """Produces the answers in order and waits for them; False when any
        was not acknowledged."""
        failed = []
        try:
            for topic, key, message in answers:
                self.produce(topic, key, message, failed)
        except Exception as e:  # a full queue, a bad topic name
            log.warning("produce: %s", e)
            return False
        left = self.producer.flush(30)
        return not failed and left == 0

    def produce(self, topic, key, message, failed=None):
        value = json.dumps(message, separators=(",", ":")).encode()

        def delivered(err, _msg):
            if err is not None:
                log.warning("produce %s to %s: %s", message["type"], topic, err)
                if failed is not None:
                    failed.append(err)
                return
            with self.stats.lock:
                self.stats.bytes_written += len(value)
                self.stats.messages_written += 1
        self.producer.produce(topic, key=key.encode(), value=value, on_delivery=delivered)

    # --- heartbeats

    def track(self, chunk):
        """Notes that the instance works for the chunk's job; the first
        chunk of a job sends a heartbeat at once."""
        now = time.monotonic()
        with self.stats.lock:
            job = self.stats.jobs.setdefault(chunk["jobId"], {"beat": None})
            job["chunk"], job["seen"] = chunk, now
            first = job["beat"] is None
        if first:
            self.beat(chunk["jobId"])

    def heartbeats(self):
        while not self.stop.wait(0.5):
            now = time.monotonic()
            with self.stats.lock:
                due = [j for j, s in self.stats.jobs.items()
                       if s["beat"] is not None and now - s["seen"] <= ACTIVE_FOR
                       and now - s["beat"] >= HEARTBEAT_INTERVAL]
                for j in [j for j, s in self.stats.jobs.items() if now - s["seen"] > ACTIVE_FOR]:
                    del self.stats.jobs[j]
            for job in due:
                try:
                    self.beat(job)
                except Exception as e:  # a missed heartbeat is logged, not fatal
                    log.warning("heartbeat: %s", e)
            self.producer.poll(0)

    def beat(self, job_id):
        """Sends one RUNNING heartbeat for a job; its key is the instance id."""
        with self.stats.lock:
            job = self.stats.jobs.get(job_id)
            if job is None:
                return
            job["beat"] = time.monotonic()
            self.stats.count += 1
            m = header(job["chunk"], "engine_heartbeat")
            m.update({"engineId": self.engine_id, "engineInstanceId": self.instance_id,
                      "count": self.stats.count, "status": "RUNNING",
                      "upTime": int((time.monotonic() - self.stats.started) * 1000),
                      "bytesRead": self.stats.bytes_read, "bytesWritten": self.stats.bytes_written,
                      "messagesWritten": self.stats.messages_written, "errorMsg": ""})
        self.produce(results_topic(job_id), self.instance_id, m)


# --- start ---------------------------------------------------------------

def read_properties(path):
    """Reads a librdkafka properties file as kcat -F does: key=value lines,
    blank lines and # comments skipped."""
    props = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            key, sep, value = line.lstrip(" \t").partition("=")
            if not sep or not key.strip():
                raise ValueError("%s line %d: want key=value" % (path, n))
            props[key.strip()] = value.lstrip(" \t")
    return props


def main(argv=None):
    p = argparse.ArgumentParser(description="weir example engine: people in frames, over Kafka")
    p.add_argument("--config", default=os.environ.get("PEOPLE_KAFKA_CONFIG", ""),
                   help="librdkafka properties file (bootstrap.servers, SASL login), "
                        "as `weir bus users add NAME --engine people --output FILE` writes it")
    p.add_argument("--bootstrap", default=os.environ.get("PEOPLE_BOOTSTRAP", ""),
                   help="broker addresses, overriding bootstrap.servers of --config")
    p.add_argument("--topic", default=os.environ.get("PEOPLE_TOPIC", "chunk_" + ENGINE),
                   help="work topic (default %(default)s)")
    p.add_argument("--group", default=os.environ.get("PEOPLE_GROUP", "weir_engine_" + ENGINE),
                   help="consumer group (default %(default)s)")
    p.add_argument("--engine-id", default=os.environ.get("PEOPLE_ENGINE_ID", ENGINE),
                   help="engineId in heartbeats (default %(default)s)")
    p.add_argument("--instance-id", default=os.environ.get("PEOPLE_INSTANCE_ID", ""),
                   help="engineInstanceId (default: engine id, host name and a random suffix)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--print-options", action="store_true",
                   help="print the options and their defaults as JSON and exit")
    args = p.parse_args(argv)
    if args.print_options:
        print(json.dumps({name: spec[1] for name, spec in OPTIONS.items()}))
        return 0
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    props = {}
    if args.config:
        try:
            props = read_properties(args.config)
        except (OSError, ValueError) as e:
            log.error("--config: %s", e)
            return 2
    if args.bootstrap:
        props["bootstrap.servers"] = args.bootstrap
    if not props.get("bootstrap.servers"):
        log.error("no broker: give --bootstrap or a --config file with bootstrap.servers")
        return 2
    instance = args.instance_id or "%s-%s-%s" % (args.engine_id, socket.gethostname(), uuid.uuid4().hex[:8])
    engine = Engine(props, args.topic, args.group, args.engine_id, instance, os.environ.get("WEIR_API_TOKEN", ""))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: engine.stop.set())
    engine.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
