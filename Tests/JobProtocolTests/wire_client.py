"""A client of jobd's wire format (Documentation/Protocol.md), for tests that speak to the
daemon's socket byte by byte, and a check of itself against the golden frames.

    python3 wire_client.py check GOLDEN_DIR   # every golden frame, encoded and decoded here
"""
import json, os, socket, struct, sys

VERSION = 1

# The verbs a request may name, and the fields each answer frame type must have.
VERBS = ["start", "invoke", "get", "receive", "receiveWait", "wait", "stop", "remove", "received", "suspend",
         "resume", "restart", "foreach", "queueGet", "queueSet", "queueRemove", "sessionNew", "sessionGet", "sessionRemove",
         "status", "shutdown"]
FRAME_FIELDS = {
    "job": ["job"],
    "jobs": ["jobs"],
    "slices": ["slices"],
    "output": ["jobId", "jobName", "location", "stream", "time", "data", "start", "end"],
    "failure": ["jobId", "jobName", "location", "reason"],
    "progress": ["finished", "total", "failed"],
    "queues": ["queues"],
    "sessions": ["sessions"],
    "status": ["pid", "home", "socket", "version", "uptimeSeconds", "jobs"],
    "done": ["notFound", "timedOut", "error"],
}
JOB_FIELDS = ["id", "name", "instanceId", "type", "state", "hasMoreData", "location", "command", "childJobs",
              "parentId", "beginTime", "endTime", "exitCode", "reason", "queue", "dependsOn", "attempt", "input",
              "cpuSeconds", "maxRssBytes"]


def dumps(value):
    """Compact JSON, as the wire carries it: keys in their order, UTF-8 as it is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def request(verb, params=None, version=VERSION):
    """The body of a request: version and verb first, then the parameters."""
    return dumps({"v": version, "verb": verb, "params": params or {}})


def frame(body):
    return struct.pack(">I", len(body)) + body


def decode(body):
    """An answer frame as (type, fields); a type this client does not know is ("unknown", fields),
    to be skipped. Raises ValueError for a frame of a known type without its fields."""
    value = json.loads(body)
    kind = value.get("type")
    if kind not in FRAME_FIELDS:
        return "unknown", value
    missing = [key for key in FRAME_FIELDS[kind] if key not in value]
    jobs = [value["job"]] if kind == "job" else value.get("jobs", []) if kind == "jobs" else []
    missing += ["job." + key for job in jobs for key in JOB_FIELDS if key not in job]
    if missing:
        raise ValueError("%s frame without %s" % (kind, ", ".join(missing)))
    return kind, value


def ask(path, payload, close_write=True, on_sent=None):
    """Sends raw bytes to the socket at `path` and returns every answer frame, decoded."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.settimeout(30)
    s.sendall(payload)
    if on_sent:
        open(on_sent, "w").close()
    if close_write:
        s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    frames = []
    while len(data) >= 4:
        (n,) = struct.unpack(">I", data[:4])
        frames.append(decode(data[4:4 + n]))
        data = data[4 + n:]
    return frames


def check(directory):
    """Each golden frame, read and written again here, gives back its own bytes; every verb and
    frame type this client knows has its golden frame, and no other."""
    names = sorted(f[:-5] for f in os.listdir(directory) if f.endswith(".json"))
    verbs, types = set(), set()
    for name in names:
        raw = open(os.path.join(directory, name + ".json"), "rb").read().rstrip(b"\n")
        value = json.loads(raw)
        if name.startswith("request-"):
            again = request(value["verb"], value["params"], value["v"])
            verbs.add(value["verb"])
        else:
            kind, fields = decode(raw)
            if kind == "unknown":
                raise SystemExit("%s: a frame type this client does not know" % name)
            again = dumps(fields)
            types.add(kind)
        if again != raw:
            raise SystemExit("%s: written again as\n%s\nnot\n%s" % (name, again.decode(), raw.decode()))
    if verbs != set(VERBS):
        raise SystemExit("verbs with golden frames %s, known here %s" % (sorted(verbs), sorted(VERBS)))
    if types != set(FRAME_FIELDS):
        raise SystemExit("frame types with golden frames %s, known here %s" % (sorted(types), sorted(FRAME_FIELDS)))
    print("checked %d golden frames" % len(names))


if __name__ == "__main__" and sys.argv[1:2] == ["check"]:
    check(sys.argv[2])
