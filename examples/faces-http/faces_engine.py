#!/usr/bin/python3
"""faces: a weir chunk engine over HTTP that finds faces in frames.

It speaks the two webhooks of Veritone's engine toolkit:

  GET  /ready    200 once the Haar cascade is loaded, 503 before
  POST /process  one chunk as multipart/form-data; answers
                   200 and a vtn-standard document (series of face objects,
                       times relative to the chunk's start; an empty series
                       when there is no face),
                   204 for a chunk whose MIME type it does not read,
                   400 with a message for a request it cannot use.

It needs only the Python standard library and Debian's python3-opencv and
opencv-data (the cascade). Run it with Debian's interpreter:

  /usr/bin/python3 faces_engine.py --listen 127.0.0.1:8891
"""

import argparse
import email.parser
import email.policy
import json
import logging
import os
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Refuse to decode frames over 40 megapixels (an 8K frame is 33): a small
# hostile JPEG could otherwise claim gigabytes. OpenCV reads this once.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(40_000_000))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ENGINE = "faces"
READS = ("image/jpeg",)
CASCADE_NAME = "haarcascade_frontalface_default.xml"
CASCADE_DIRS = (
    "/usr/share/opencv4/haarcascades",  # Debian's opencv-data
    "/usr/share/opencv/haarcascades",
    "/usr/local/share/opencv4/haarcascades",
)
MAX_REQUEST_BYTES = 32 << 20

# Options a task may give in the payload field, as in manifest.yaml:
# name -> (type, default, min, max).
OPTIONS = {
    "scale_factor": (float, 1.1, 1.01, 2.0),
    "min_neighbors": (int, 5, 1, 50),
    "min_size": (int, 30, 1, 10000),
}

log = logging.getLogger(ENGINE)


class BadRequest(Exception):
    """A request the engine cannot use: answered 400 with the message."""


class Ignored(Exception):
    """A chunk the engine does not read: answered 204."""


def find_cascade(explicit):
    """Returns the path of the frontal face cascade, explicit when given."""
    if explicit:
        return explicit
    data = getattr(cv2, "data", None)  # pip's opencv-python has it, Debian's not
    if data is not None:
        candidate = os.path.join(data.haarcascades, CASCADE_NAME)
        if os.path.exists(candidate):
            return candidate
    for d in CASCADE_DIRS:
        candidate = os.path.join(d, CASCADE_NAME)
        if os.path.exists(candidate):
            return candidate
    raise FileNotFoundError(
        "%s not found in %s; install it with: apt-get install -y opencv-data"
        % (CASCADE_NAME, ", ".join(CASCADE_DIRS)))


class Detector:
    """Loads the cascade once and gives each serving thread its own
    classifier, since one CascadeClassifier must not be used by two threads
    at once."""

    def __init__(self, path):
        self.path = path
        self.ready = threading.Event()
        self.error = None
        self._local = threading.local()

    def load(self):
        """Loads the cascade (checking it) and marks the engine ready."""
        try:
            self._classifier()
            self.ready.set()
            log.info("cascade loaded from %s", self.path)
        except Exception as e:  # reported by /ready and the log
            self.error = str(e)
            log.error("cannot load the cascade: %s", e)

    def _classifier(self):
        c = getattr(self._local, "classifier", None)
        if c is None:
            c = cv2.CascadeClassifier(self.path)
            if c.empty():
                raise RuntimeError("%s is not a cascade OpenCV can load" % self.path)
            self._local.classifier = c
        return c

    def faces(self, image, opts):
        """Returns the faces in a BGR image as (x, y, w, h) pixel boxes."""
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        size = opts["min_size"]
        found = self._classifier().detectMultiScale(
            gray, scaleFactor=opts["scale_factor"],
            minNeighbors=opts["min_neighbors"], minSize=(size, size))
        return [tuple(int(v) for v in r) for r in found]


def parse_options(raw):
    """Parses the payload field (a JSON object) into option values, the
    defaults filled in. Unknown members are left alone: the task payload may
    carry more than this engine's options."""
    payload = {}
    if raw.strip():
        try:
            payload = json.loads(raw)
        except ValueError as e:
            raise BadRequest("field payload: not JSON: %s" % e)
        if not isinstance(payload, dict):
            raise BadRequest("field payload: must be a JSON object, got %s" % type(payload).__name__)
    opts = {}
    for name, (kind, default, lo, hi) in OPTIONS.items():
        v = payload.get(name, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise BadRequest("option %r: want a number, got %r" % (name, v))
        if kind is int:
            if v != int(v):
                raise BadRequest("option %r: want an integer, got %r" % (name, v))
            v = int(v)
        v = kind(v)
        if not lo <= v <= hi:
            raise BadRequest("option %r: must be between %s and %s, got %s" % (name, lo, hi, v))
        opts[name] = v
    return opts


def parse_form(content_type, body):
    """Parses a multipart/form-data body into {name: (bytes, content type)}."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise BadRequest("Content-Type must be multipart/form-data, got %r" % content_type)
    head = ("Content-Type: %s\r\nMIME-Version: 1.0\r\n\r\n" % content_type).encode("latin-1", "replace")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart() or msg.get_boundary() is None:
        raise BadRequest("body is not multipart/form-data with a boundary")
    parts = list(msg.iter_parts())
    if not parts:
        raise BadRequest("multipart body has no parts (is the boundary right?)")
    fields = {}
    for part in parts:
        name = part.get_param("name", header="content-disposition")
        if not name:
            raise BadRequest("a multipart part has no Content-Disposition name")
        data = part.get_payload(decode=True)
        fields[name] = (data if data is not None else b"", part.get_content_type())
    return fields


def text_field(fields, name, default=""):
    """Returns a form field as text."""
    if name not in fields:
        return default
    try:
        return fields[name][0].decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadRequest("field %s: not UTF-8 text" % name)


def int_field(fields, name, default=0):
    """Returns a form field as an integer."""
    text = text_field(fields, name)
    if text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise BadRequest("field %s: want an integer, got %r" % (name, text[:40]))


def process(detector, fields):
    """Answers one /process request: the vtn-standard document of the faces
    in the chunk. Raises Ignored or BadRequest."""
    if "chunk" not in fields:
        raise BadRequest("field chunk (the chunk's bytes) is missing")
    chunk, part_type = fields["chunk"]
    mime = text_field(fields, "chunkMimeType") or part_type
    start = int_field(fields, "startOffsetMS")
    end = int_field(fields, "endOffsetMS", start)
    if start < 0 or end < start:
        raise BadRequest("startOffsetMS %d and endOffsetMS %d do not make a range" % (start, end))
    opts = parse_options(text_field(fields, "payload"))
    if mime.split(";")[0].strip().lower() not in READS:
        raise Ignored("chunkMimeType %r is not one this engine reads (%s)" % (mime, ", ".join(READS)))
    if not chunk:
        raise BadRequest("field chunk is empty")
    try:
        image = cv2.imdecode(np.frombuffer(chunk, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as e:  # over OPENCV_IO_MAX_IMAGE_PIXELS, among others
        raise BadRequest("field chunk: cannot decode it: %s" % str(e).strip().splitlines()[-1])
    if image is None:
        raise BadRequest("field chunk: %d bytes that are not a decodable %s image" % (len(chunk), mime))
    height, width = image.shape[:2]
    series = []
    for (x, y, w, h) in detector.faces(image, opts):
        series.append({
            "startTimeMs": 0,
            "stopTimeMs": end - start,
            "object": {"type": "face", "label": "face", "boundingPoly": polygon(x, y, w, h, width, height)},
        })
    return {"sourceEngineName": ENGINE, "taskId": text_field(fields, "taskId"), "series": series}


def polygon(x, y, w, h, width, height):
    """Returns a pixel box as a vtn boundingPoly: four corners clockwise
    from the top left, in fractions of the frame, clamped to 0..1."""
    def fx(v):
        return round(min(max(v / width, 0.0), 1.0), 5)

    def fy(v):
        return round(min(max(v / height, 0.0), 1.0), 5)
    return [{"x": fx(x), "y": fy(y)}, {"x": fx(x + w), "y": fy(y)},
            {"x": fx(x + w), "y": fy(y + h)}, {"x": fx(x), "y": fy(y + h)}]


class Handler(BaseHTTPRequestHandler):
    """Serves /ready and /process."""

    server_version = "weir-faces/1"
    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds a client may stall mid-request before its connection is closed
    detector = None  # set by serve

    def do_GET(self):
        if self.path.split("?")[0] == "/ready":
            if self.detector.ready.is_set():
                return self.reply(HTTPStatus.OK, {"ready": True})
            why = self.detector.error or "loading the cascade"
            return self.reply(HTTPStatus.SERVICE_UNAVAILABLE, {"ready": False, "error": why})
        if self.path.split("?")[0] == "/process":
            return self.reply(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "POST a chunk to /process"}, allow="POST")
        self.reply(HTTPStatus.NOT_FOUND, {"error": "no such path; this engine serves GET /ready and POST /process"})

    def do_POST(self):
        if self.path.split("?")[0] != "/process":
            return self.reply(HTTPStatus.NOT_FOUND, {"error": "no such path; POST chunks to /process"})
        if not self.detector.ready.is_set():
            return self.reply(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "not ready"})
        try:
            body = self.read_body()
            doc = process(self.detector, parse_form(self.headers.get("Content-Type", ""), body))
        except Ignored as e:
            log.info("ignored: %s", e)
            return self.reply(HTTPStatus.NO_CONTENT, None)
        except BadRequest as e:
            log.warning("bad request: %s", e)
            return self.reply(HTTPStatus.BAD_REQUEST, {"error": str(e)})
        except Exception as e:  # never let one request take the server down
            log.exception("processing failed")
            return self.reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "processing failed: %s" % e})
        self.reply(HTTPStatus.OK, doc)

    def read_body(self):
        """Reads the request body, by Content-Length or chunked."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            raise BadRequest("the request has neither Content-Length nor chunked Transfer-Encoding")
        try:
            n = int(length)
        except ValueError:
            raise BadRequest("Content-Length %r is not a number" % length)
        if n < 0 or n > MAX_REQUEST_BYTES:
            self.close_connection = True
            raise BadRequest("Content-Length %d is not between 0 and %d" % (n, MAX_REQUEST_BYTES))
        body = self.rfile.read(n)
        if len(body) != n:
            self.close_connection = True
            raise BadRequest("body ended after %d of %d bytes" % (len(body), n))
        return body

    def read_chunked(self):
        body = bytearray()
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise BadRequest("bad chunk size line in chunked body")
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass  # trailers
                return bytes(body)
            if len(body) + size > MAX_REQUEST_BYTES:
                self.close_connection = True
                raise BadRequest("body is larger than %d bytes" % MAX_REQUEST_BYTES)
            body += self.rfile.read(size)
            self.rfile.readline(1024)

    def reply(self, status, doc, allow=None):
        data = b"" if doc is None else json.dumps(doc).encode()
        self.send_response(status)
        if allow:
            self.send_header("Allow", allow)
        if doc is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, fmt, *args):
        log.debug("%s %s", self.address_string(), fmt % args)


def serve(listen, cascade):
    """Starts the server, loads the cascade in the background, and serves
    until interrupted."""
    host, _, port = listen.rpartition(":")
    detector = Detector(find_cascade(cascade))
    Handler.detector = detector
    server = ThreadingHTTPServer((host.strip("[]") or "127.0.0.1", int(port)), Handler)
    server.daemon_threads = True
    threading.Thread(target=detector.load, daemon=True).start()
    addr, bound = server.server_address[:2]
    print("%s: listening on http://%s:%d" % (ENGINE, addr, bound), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv=None):
    p = argparse.ArgumentParser(description="weir example engine: faces in frames, over HTTP (Veritone engine toolkit webhooks)")
    p.add_argument("--listen", default=os.environ.get("FACES_LISTEN", "127.0.0.1:8891"),
                   help="host:port to serve on; port 0 picks a free one (default %(default)s)")
    p.add_argument("--cascade", default=os.environ.get("FACES_CASCADE", ""),
                   help="Haar cascade file (default: opencv-data's %s)" % CASCADE_NAME)
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--print-options", action="store_true",
                   help="print the options and their defaults as JSON and exit")
    args = p.parse_args(argv)
    if args.print_options:
        print(json.dumps({name: spec[1] for name, spec in OPTIONS.items()}))
        return 0
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        serve(args.listen, args.cascade)
    except (OSError, ValueError) as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
