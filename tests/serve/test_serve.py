#!/usr/bin/python3
"""End-to-end tests of `kiln serve`: real servers on free loopback ports, talked to over HTTP/1.1.

  correctness   every bundled model (examples/repository: the MLP and both GBDT versions; `kiln serve MODEL`)
                answers exactly what `kiln run` writes for examples/mlp/input.npy, with JSON tensors (flat and
                nested), binary tensors (Triton's extension) and TF-Serving's :predict
  datatypes     every V2 datatype (FP64 .. BOOL, FP16, BF16, BYTES) in and out, JSON and binary, extremes
                included, also batched with other requests (tests/serve/data/dtypes, made by
                make_fixtures.py); out-of-range values refused
  errors        each class of bad request gets its 4xx with a message, and the server keeps serving
  mangled       truncations and random byte changes of valid requests: 200 or a JSON 4xx, never a crash
  limits        oversize headers 431, a request arriving too slowly 408, too many connections 503
  batching      concurrent requests share executions when max_queue_delay_us is set; a request queued past
                queue_timeout_us gets 503
  repository    index, unload, load (with a config), metrics, statistics, access log; polling notices new
                versions and removed models
  reload        100 reloads of a model under concurrent load: no request fails, resident memory stays flat
  drain         SIGTERM under load: every request the server accepted is answered 200, then it exits 0

Only the standard library (http.client); every server is killed when its test ends, and every wait is bounded.

usage: tests/serve/test_serve.py KILN SOURCE_DIR
"""
import http.client
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

KILN = SOURCE = None
SANITIZED = False  # kiln was built with AddressSanitizer (KILN_SANITIZE)
DEADLINE_S = 60  # no single wait in these tests may take longer

NPY_TYPES = {"<f4": ("f", 4, "FP32"), "<f8": ("d", 8, "FP64"), "<i8": ("q", 8, "INT64"), "<i4": ("i", 4, "INT32"),
             "|u1": ("B", 1, "UINT8"), "|b1": ("?", 1, "BOOL")}
V2_FORMATS = {"FP64": ("d", 8), "FP32": ("f", 4), "FP16": ("e", 2), "BF16": ("H", 2), "INT8": ("b", 1),
              "INT16": ("h", 2), "INT32": ("i", 4), "INT64": ("q", 8), "UINT8": ("B", 1), "UINT16": ("H", 2),
              "UINT32": ("I", 4), "UINT64": ("Q", 8), "BOOL": ("?", 1)}


# ---- small helpers ------------------------------------------------------------------------------------------

def read_npy(path):
    """(datatype, shape, flat values) of a version-1 .npy file, without numpy."""
    with open(path, "rb") as f:
        data = f.read()
    header_len = struct.unpack("<H", data[8:10])[0]
    header = data[10:10 + header_len].decode("latin1")
    descr = re.search(r"'descr': '([^']+)'", header).group(1)
    shape = tuple(int(d) for d in re.search(r"'shape': \(([^)]*)\)", header).group(1).split(",") if d.strip())
    fmt, size, v2 = NPY_TYPES[descr]
    n = 1
    for d in shape:
        n *= d
    return v2, list(shape), list(struct.unpack("<%d%s" % (n, fmt), data[10 + header_len:10 + header_len + n * size]))


def write_npy(path, shape, values):
    """A float32 C-order .npy file (format version 1), without numpy."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % "".join("%d, " % d for d in shape)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1"))
        f.write(struct.pack("<%df" % len(values), *values))


def nest(flat, shape):
    if len(shape) <= 1:
        return list(flat)
    step = len(flat) // shape[0]
    return [nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def flatten(value):
    if isinstance(value, list):
        return [x for v in value for x in flatten(v)]
    return [value]


def as_float32(values):
    return list(struct.unpack("<%df" % len(values), struct.pack("<%df" % len(values), *values)))


def same_values(datatype, got, want):
    if datatype == "FP32":
        got = as_float32(got)
    return got == want


def kiln_run(model, inputs, outdir):
    subprocess.run([KILN, "run", model] + inputs + ["-o", outdir], check=True, timeout=DEADLINE_S,
                   stdout=subprocess.DEVNULL)
    outputs = []
    k = 0
    while os.path.exists(os.path.join(outdir, "output_%d.npy" % k)):
        outputs.append(read_npy(os.path.join(outdir, "output_%d.npy" % k)))
        k += 1
    assert outputs, "kiln run %s wrote no outputs" % model
    return outputs


def die_with_parent():
    """In the child before exec: SIGKILL when this test process dies, however it dies (a ctest timeout)."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


class Server:
    """A `kiln serve` process on a free port; stopped (SIGKILL if it will not stop) by stop()."""

    def __init__(self, args, ready=True):
        self.log = tempfile.NamedTemporaryFile(prefix="kiln-serve-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([KILN, "serve", "--port", "0", "--host", "127.0.0.1"] + args,
                                     stdout=subprocess.DEVNULL, stderr=self.log, preexec_fn=die_with_parent)
        self.port = None
        end = time.time() + DEADLINE_S
        while self.port is None:
            m = re.search(r"listening on http://[^ ]*:(\d+)", self.stderr())
            if m:
                self.port = int(m.group(1))
            elif self.proc.poll() is not None or time.time() > end:
                self.stop()
                raise AssertionError("kiln serve did not start: %s" % self.stderr())
            else:
                time.sleep(0.02)
        if ready:
            self.wait_ready()

    def stderr(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def wait_ready(self):
        end = time.time() + DEADLINE_S
        while self.request("GET", "/v2/health/ready")[0] != 200:
            if time.time() > end or self.proc.poll() is not None:
                raise AssertionError("kiln serve never became ready: %s" % self.stderr())
            time.sleep(0.02)

    def connect(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEADLINE_S)

    def request(self, method, path, body=None, headers=None, conn=None):
        """(status, headers, body bytes) on a new connection unless one is given."""
        own = conn is None
        conn = conn or self.connect()
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            if own:
                conn.close()

    def json(self, method, path, body=None, status=200):
        got, _, data = self.request(method, path, body)
        assert got == status, "%s %s: %d (expected %d): %r" % (method, path, got, status, data[:300])
        return json.loads(data) if data else None

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)
        return self.proc.returncode


def v2_request(datatype, shape, values, nested=False, **extra):
    body = {"inputs": [{"name": "features", "datatype": datatype, "shape": shape,
                        "data": nest(values, shape) if nested else values}]}
    body.update(extra)
    return body


def binary_request(datatype, shape, values, outputs):
    """A body in the binary tensor extension: JSON header, then the raw input; every output asked as binary."""
    fmt, _ = V2_FORMATS[datatype]
    raw = struct.pack("<%d%s" % (len(values), fmt), *values)
    header = json.dumps({
        "inputs": [{"name": "features", "datatype": datatype, "shape": shape,
                    "parameters": {"binary_data_size": len(raw)}}],
        "outputs": [{"name": name, "parameters": {"binary_data": True}} for name in outputs]}).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header)),
                          "Content-Type": "application/octet-stream"}


def read_binary_response(headers, data):
    """{output name: (datatype, shape, values)} of a binary-extension response."""
    json_length = int(headers["Inference-Header-Content-Length"])
    doc = json.loads(data[:json_length])
    offset = json_length
    out = {}
    for o in doc["outputs"]:
        size = o["parameters"]["binary_data_size"]
        fmt, width = V2_FORMATS[o["datatype"]]
        out[o["name"]] = (o["datatype"], o["shape"], list(struct.unpack("<%d%s" % (size // width, fmt),
                                                                         data[offset:offset + size])))
        offset += size
    assert offset == len(data), "%d bytes after the binary outputs" % (len(data) - offset)
    return doc, out


# ---- the tests ----------------------------------------------------------------------------------------------

def example_models():
    """(served name, version, model file, output names) for each bundled model."""
    repo = os.path.join(SOURCE, "examples", "repository")
    return [("breast_cancer_mlp", "1", os.path.join(repo, "breast_cancer_mlp", "1", "model.onnx"), ["probabilities"]),
            ("breast_cancer_gbdt", "1", os.path.join(repo, "breast_cancer_gbdt", "1", "model.json"),
             ["label", "probabilities"]),
            ("breast_cancer_gbdt", "2", os.path.join(repo, "breast_cancer_gbdt", "2", "model.json"),
             ["label", "probabilities"])]


def check_outputs(what, got, want, names):
    """got: {name: (datatype, shape, values)}; want: kiln run's outputs in order."""
    assert len(want) == len(names), (what, len(want), names)
    for name, (datatype, shape, values) in zip(names, want):
        g = got[name]
        assert g[0] == datatype and g[1] == shape, "%s: output %s is %s %s, kiln run gives %s %s" % (
            what, name, g[0], g[1], datatype, shape)
        assert same_values(datatype, g[2], values), "%s: output %s differs from kiln run:\n%s\n%s" % (
            what, name, g[2], values)


def json_outputs(doc):
    return {o["name"]: (o["datatype"], o["shape"], flatten(o["data"])) for o in doc["outputs"]}


def test_outputs_equal_kiln_run(tmp):
    input_npy = os.path.join(SOURCE, "examples", "mlp", "input.npy")
    datatype, shape, values = read_npy(input_npy)
    s = Server(["--model-repository", os.path.join(SOURCE, "examples", "repository")])
    try:
        for name, version, path, outputs in example_models():
            want = kiln_run(path, [input_npy], os.path.join(tmp, "%s-%s" % (name, version)))
            url = "/v2/models/%s/versions/%s/infer" % (name, version)
            for nested in (False, True):
                doc = s.json("POST", url, v2_request(datatype, shape, values, nested=nested, id="req-7",
                                                     parameters={"note": "anything"}))
                assert doc["id"] == "req-7" and doc["model_name"] == name and doc["model_version"] == version, doc
                check_outputs("%s JSON (nested %s)" % (url, nested), json_outputs(doc), want, outputs)
            body, headers = binary_request(datatype, shape, values, outputs)
            status, rheaders, data = s.request("POST", url, body, headers)
            assert status == 200, data
            _, got = read_binary_response(rheaders, data)
            check_outputs(url + " binary", got, want, outputs)
            # outputs selection: only the last output, in JSON
            doc = s.json("POST", url, v2_request(datatype, shape, values, outputs=[{"name": outputs[-1]}]))
            assert [o["name"] for o in doc["outputs"]] == [outputs[-1]], doc
            check_outputs(url + " selected", json_outputs(doc), want[-1:], outputs[-1:])
            # TF-Serving :predict, row format
            rows = nest(values, shape)
            doc = s.json("POST", "/v1/models/%s/versions/%s:predict" % (name, version), {"instances": rows})
            preds = doc["predictions"]
            assert len(preds) == shape[0], doc
            if len(outputs) == 1:
                got = {outputs[0]: (want[0][0], want[0][1], flatten(preds))}
            else:
                got = {k: (w[0], w[1], flatten([p[k] for p in preds])) for k, w in zip(outputs, want)}
            check_outputs("TF-Serving predict %s/%s" % (name, version), got, want, outputs)
        # the largest batch the MLP takes (64 rows): bodies beyond the first read buffer, JSON and binary
        rows = [values[(i * 7 % shape[0]) * shape[1]:(i * 7 % shape[0] + 1) * shape[1]] for i in range(64)]
        big = [v * (1 + i / 100.0) for i, row in enumerate(rows) for v in row]
        big = as_float32(big)
        big_npy = os.path.join(tmp, "big.npy")
        write_npy(big_npy, [64, shape[1]], big)
        want = kiln_run(example_models()[0][2], [big_npy], os.path.join(tmp, "big"))
        url = "/v2/models/breast_cancer_mlp/infer"
        doc = s.json("POST", url, v2_request(datatype, [64, shape[1]], big, nested=True))
        check_outputs("64 rows, JSON", json_outputs(doc), want, ["probabilities"])
        body, headers = binary_request(datatype, [64, shape[1]], big, ["probabilities"])
        status, rheaders, data = s.request("POST", url, body, headers)
        assert status == 200, data[:300]
        check_outputs("64 rows, binary", read_binary_response(rheaders, data)[1], want, ["probabilities"])
        # the newest version answers when none is named
        assert s.json("POST", "/v2/models/breast_cancer_gbdt/infer",
                      v2_request(datatype, shape, values))["model_version"] == "2"
    finally:
        assert s.stop() == 0
    # one model file, served under its base name
    mlp = os.path.join(SOURCE, "examples", "mlp", "model.onnx")
    want = kiln_run(mlp, [input_npy], os.path.join(tmp, "single"))
    s = Server([mlp])
    try:
        doc = s.json("POST", "/v2/models/model/infer", v2_request(datatype, shape, values))
        check_outputs("kiln serve MODEL", json_outputs(doc), want, ["probabilities"])
    finally:
        assert s.stop() == 0


def test_errors_are_4xx_and_the_server_keeps_serving(tmp):
    datatype, shape, values = read_npy(os.path.join(SOURCE, "examples", "mlp", "input.npy"))
    good = v2_request(datatype, shape, values)
    mlp = "/v2/models/breast_cancer_mlp/infer"
    raw, bin_headers = binary_request(datatype, shape, values, ["probabilities"])
    cases = [
        ("malformed JSON", "POST", mlp, '{"inputs": [', None, 400),
        ("not an object", "POST", mlp, "[1, 2]", None, 400),
        ("no inputs", "POST", mlp, {"id": "x"}, None, 400),
        ("wrong shape", "POST", mlp, v2_request(datatype, [4, 29], values[:116]), None, 400),
        ("shape and data disagree", "POST", mlp, v2_request(datatype, shape, values[:-1]), None, 400),
        ("ragged nested data", "POST", mlp,
         {"inputs": [{"name": "features", "datatype": "FP32", "shape": [2, 30], "data": [[1.0] * 30, [1.0] * 29]}]},
         None, 400),
        ("wrong datatype", "POST", mlp, v2_request("FP64", shape, values), None, 400),
        ("unknown datatype", "POST", mlp, v2_request("FLOAT", shape, values), None, 400),
        ("a string where a number goes", "POST", mlp, v2_request(datatype, [1, 30], ["x"] * 30), None, 400),
        ("unknown input", "POST", mlp,
         {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 30], "data": [0.0] * 30}]}, None, 400),
        ("unknown output", "POST", mlp, v2_request(datatype, shape, values, outputs=[{"name": "nope"}]), None, 400),
        ("batch too large", "POST", mlp, v2_request(datatype, [65, 30], [0.0] * 65 * 30), None, 400),
        ("binary size mismatch", "POST", mlp, raw[:-4], bin_headers, 400),
        ("bad header length", "POST", mlp, raw, {"Inference-Header-Content-Length": "999999"}, 400),
        ("unknown model", "POST", "/v2/models/nope/infer", good, None, 404),
        ("unknown version", "POST", "/v2/models/breast_cancer_mlp/versions/9/infer", good, None, 404),
        ("unknown model metadata", "GET", "/v2/models/nope", None, None, 404),
        ("unknown endpoint", "GET", "/v3/whatever", None, None, 404),
        ("wrong method", "GET", mlp, None, None, 405),
        ("URL too long", "GET", "/v2/models/" + "m" * 1100, None, None, 414),
        ("oversize body", "POST", mlp, '{"inputs": [' + " " * 300000 + "]}", None, 413),
        ("TF-Serving: no instances", "POST", "/v1/models/breast_cancer_mlp:predict", {"x": 1}, None, 400),
        ("repository: unknown model", "POST", "/v2/repository/models/nope/load", None, None, 404),
    ]
    s = Server(["--model-repository", os.path.join(SOURCE, "examples", "repository"), "--max-body-bytes", "200000"])
    try:
        conn = s.connect()
        for what, method, path, body, headers, status in cases:
            got, _, data = s.request(method, path, body, headers)
            assert got == status, "%s: %d (expected %d): %r" % (what, got, status, data[:300])
            if status != 405 or data:
                message = json.loads(data)["error"]
                assert isinstance(message, str) and len(message) > 10, (what, data)
            # the server still answers correctly, on a connection that lived through every error
            got, _, data = s.request("POST", mlp, good, conn=conn)
            assert got == 200, "after %s: %d %r" % (what, got, data[:200])
        assert s.request("GET", "/v2/health/live")[0] == 200
        # the error counters moved
        metrics = s.request("GET", "/metrics")[2].decode()
        assert re.search(r'kiln_inference_request_failure_total\{model="breast_cancer_mlp",version="1"\} [1-9]',
                         metrics), metrics
        conn.close()
    finally:
        assert s.stop() == 0


def test_limits(tmp):
    """Header size, request time and connection count: each refused with its status, then serving goes on."""
    import socket
    datatype, shape, values = read_npy(os.path.join(SOURCE, "examples", "mlp", "input.npy"))
    good = json.dumps(v2_request(datatype, shape, values)).encode()
    path = "/v2/models/breast_cancer_mlp/infer"
    s = Server(["--model-repository", os.path.join(SOURCE, "examples", "repository"), "--max-header-bytes", "4096",
                "--request-timeout", "1", "--max-connections", "2"])
    try:
        # headers beyond the connection's memory: libmicrohttpd answers 431 itself, and closes
        with socket.create_connection(("127.0.0.1", s.port), timeout=DEADLINE_S) as sock:
            sock.sendall(b"GET /v2 HTTP/1.1\r\nHost: x\r\nX-Padding: %s\r\n\r\n" % (b"x" * 6000))
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:300]
        # a body trickling in for longer than the request timeout (1 s), ending before twice that
        with socket.create_connection(("127.0.0.1", s.port), timeout=DEADLINE_S) as sock:
            sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (path.encode(), len(good)))
            pieces = [good[i * len(good) // 3:(i + 1) * len(good) // 3] for i in range(3)]
            for piece in pieces:
                time.sleep(0.4)
                sock.sendall(piece)
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 408") and b"longer than 1 s" in answer, answer[:300]
        # a third connection while two are open
        first, second = s.connect(), s.connect()
        first.connect()
        second.connect()
        time.sleep(0.1)
        got, _, data = s.request("POST", path, good)
        assert got == 503 and b"too many connections" in data, (got, data[:200])
        first.close()
        second.close()
        time.sleep(0.2)
        assert s.request("POST", path, good)[0] == 200
    finally:
        assert s.stop() == 0


# One value triple per datatype, each exact in its type (extremes included); what tests/serve/data/dtypes echoes.
DTYPE_VALUES = {
    "FP64": [0.1, -1e300, 5e-324], "FP32": [0.1, -3.4028234663852886e38, 1e-45], "FP16": [0.5, -65504.0, 2 ** -14],
    "BF16": [1.5, -2.0, 2.0 ** 100], "INT8": [-128, 127, 0], "INT16": [-32768, 32767, 1],
    "INT32": [-2 ** 31, 2 ** 31 - 1, 5], "INT64": [-2 ** 63, 2 ** 63 - 1, 7], "UINT8": [0, 255, 1],
    "UINT16": [0, 65535, 2], "UINT32": [0, 2 ** 32 - 1, 3], "UINT64": [0, 2 ** 64 - 1, 4], "BOOL": [True, False, True],
    "BYTES": ["a", "h\u00e9llo \"quoted\"", ""]}


def expected_outputs(values):
    """{output name: values} the dtypes model answers for inputs {datatype: values} (BYTES as str)."""
    want = {"y_" + dt.lower(): v for dt, v in values.items()}
    want["s_int32"] = [str(v) for v in values["INT32"]]
    return want


def same_output(datatype, got, want):
    if datatype in ("FP32", "FP16", "BF16"):
        return as_float32(got) == as_float32(want)
    return got == want


def pack_values(datatype, values):
    if datatype == "BYTES":  # each element: 4-byte little-endian length, then its bytes
        return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)
    if datatype == "BF16":  # the top half of the float32
        return b"".join(struct.pack("<f", v)[2:] for v in values)
    fmt, _ = V2_FORMATS[datatype]
    return struct.pack("<%d%s" % (len(values), fmt), *values)


def unpack_values(datatype, raw):
    if datatype == "BYTES":
        values, i = [], 0
        while i < len(raw):
            n = struct.unpack("<I", raw[i:i + 4])[0]
            values.append(raw[i + 4:i + 4 + n].decode())
            i += 4 + n
        return values
    if datatype == "BF16":
        return [struct.unpack("<f", b"\0\0" + raw[i:i + 2])[0] for i in range(0, len(raw), 2)]
    fmt, width = V2_FORMATS[datatype]
    return list(struct.unpack("<%d%s" % (len(raw) // width, fmt), raw))


def test_every_datatype(tmp):
    """Every V2 datatype in and out, as JSON and as binary, alone and batched with other requests; values out of
    a type's range are refused."""
    s = Server(["--model-repository", os.path.join(SOURCE, "tests", "serve", "data")])
    url = "/v2/models/dtypes/infer"
    try:
        inputs = [{"name": "x_" + dt.lower(), "datatype": dt, "shape": [1, 3], "data": v}
                  for dt, v in DTYPE_VALUES.items()]
        doc = s.json("POST", url, {"inputs": inputs})
        want = expected_outputs(DTYPE_VALUES)
        assert sorted(o["name"] for o in doc["outputs"]) == sorted(want), doc
        for out in doc["outputs"]:
            assert out["shape"] == [1, 3] and same_output(out["datatype"], out["data"], want[out["name"]]), out
        # binary in, binary out
        raws = [pack_values(dt, v) for dt, v in DTYPE_VALUES.items()]
        header = json.dumps({
            "inputs": [{"name": "x_" + dt.lower(), "datatype": dt, "shape": [1, 3],
                        "parameters": {"binary_data_size": len(raw)}} for dt, raw in zip(DTYPE_VALUES, raws)],
            "parameters": {"binary_data_output": True}}).encode()
        status, headers, data = s.request("POST", url, header + b"".join(raws),
                                          {"Inference-Header-Content-Length": str(len(header))})
        assert status == 200, data[:300]
        json_length = int(headers["Inference-Header-Content-Length"])
        offset = json_length
        for out in json.loads(data[:json_length])["outputs"]:
            size = out["parameters"]["binary_data_size"]
            got = unpack_values(out["datatype"], data[offset:offset + size])
            offset += size
            assert same_output(out["datatype"], got, want[out["name"]]), (out, got)
        assert offset == len(data)
        # concurrent requests with their own values share batches: each gets its own rows back (strings too)
        def own_values(i):
            values = dict(DTYPE_VALUES, INT32=[i, -i, i * 1000], BYTES=["r%d" % i, "", "row %d" % i])
            body = {"inputs": [{"name": "x_" + dt.lower(), "datatype": dt, "shape": [1, 3], "data": v}
                               for dt, v in values.items()]}
            answer = expected_outputs(values)
            for _ in range(20):
                for out in s.json("POST", url, body)["outputs"]:
                    assert same_output(out["datatype"], out["data"], answer[out["name"]]), (i, out)
        run_concurrently(8, own_values)
        stats = s.json("GET", "/v2/models/dtypes/stats")["model_stats"][0]
        assert stats["execution_count"] < stats["inference_count"], stats  # batches were shared
        refused = [("UINT8", 256), ("INT8", -129), ("INT16", 32768), ("UINT64", -1), ("INT32", 1.5), ("BOOL", 1),
                   ("INT64", 2 ** 63), ("UINT32", "7"), ("BYTES", 7)]
        for dt, bad in refused:
            body = {"inputs": [dict(i, data=[bad, i["data"][1], i["data"][2]]) if i["datatype"] == dt else i
                               for i in inputs]}
            got, _, data = s.request("POST", url, body)
            assert got == 400 and b"element 0" in data, (dt, bad, got, data[:300])
        assert s.json("POST", url, {"inputs": inputs})["outputs"]
    finally:
        assert s.stop() == 0


def test_mangled_requests(tmp):
    """Truncations and random byte changes of valid V2 (JSON and binary), TF-Serving and repository requests:
    every answer is 200 or a 4xx/503 with a JSON error, and the server survives (under the sanitizers too)."""
    import random
    rng = random.Random(6)
    datatype, shape, values = read_npy(os.path.join(SOURCE, "examples", "mlp", "input.npy"))
    mlp = "/v2/models/breast_cancer_mlp/infer"
    json_body = json.dumps(v2_request(datatype, shape, values, nested=True, id="m",
                                      outputs=[{"name": "probabilities"}])).encode()
    binary_body, binary_headers = binary_request(datatype, shape, values, ["probabilities"])
    tfs_body = json.dumps({"instances": nest(values, shape)}).encode()
    raws = [pack_values(dt, v) for dt, v in DTYPE_VALUES.items()]
    header = json.dumps({"inputs": [{"name": "x_" + dt.lower(), "datatype": dt, "shape": [1, 3],
                                     "parameters": {"binary_data_size": len(raw)}}
                                    for dt, raw in zip(DTYPE_VALUES, raws)]}).encode()
    dtypes_body = header + b"".join(raws)
    cases = [(mlp, json_body, {}), (mlp, binary_body, binary_headers),
             ("/v2/models/dtypes/infer", dtypes_body, {"Inference-Header-Content-Length": str(len(header))}),
             ("/v1/models/breast_cancer_gbdt:predict", tfs_body, {}),
             ("/v2/repository/models/breast_cancer_mlp/load", b'{"parameters": {"config": "{}"}}', {})]
    repo = os.path.join(tmp, "repo")
    shutil.copytree(os.path.join(SOURCE, "examples", "repository"), repo)
    shutil.copytree(os.path.join(SOURCE, "tests", "serve", "data", "dtypes"), os.path.join(repo, "dtypes"))
    with open(os.path.join(repo, "dtypes", "config.json"), "w") as f:
        f.write("{}")  # no batching delay: mangled requests one after another
    s = Server(["--model-repository", repo])
    try:
        conn = s.connect()
        answered = 0
        for path, body, headers in cases:
            variants = [body[:n] for n in range(0, len(body), max(1, len(body) // 60))]
            for _ in range(150):
                mangled = bytearray(body)
                for _ in range(rng.randint(1, 4)):
                    i = rng.randrange(len(mangled))
                    syntax = rng.random() < 0.7  # mostly characters that matter to JSON
                    mangled[i] = rng.choice(b'{}[]",:0123456789.-eE \x00\xff') if syntax else rng.randrange(256)
                variants.append(bytes(mangled))
            for variant in variants:
                got, _, data = s.request("POST", path, variant, headers, conn=conn)
                assert got == 200 or 400 <= got < 500 or got == 503, (path, variant[:200], got, data[:200])
                if got != 200:
                    assert isinstance(json.loads(data)["error"], str), data[:200]
                answered += 1
        conn.close()
        assert s.request("POST", mlp, json_body)[0] == 200
        print("  mangled requests: %d answered, the server still serves" % answered)
    finally:
        assert s.stop() == 0


def write_repository(tmp, name, config):
    repo = os.path.join(tmp, "repo-" + name)
    os.makedirs(os.path.join(repo, name, "1"))
    shutil.copyfile(os.path.join(SOURCE, "examples", "mlp", "model.onnx"), os.path.join(repo, name, "1", "model.onnx"))
    with open(os.path.join(repo, name, "config.json"), "w") as f:
        json.dump(config, f)
    return repo


def run_concurrently(n, fn):
    results = [None] * n
    errors = []

    def worker(i):
        try:
            results[i] = fn(i)
        except Exception:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
    assert not errors, errors[0]
    return results


def test_dynamic_batching(tmp):
    datatype, shape, values = read_npy(os.path.join(SOURCE, "examples", "mlp", "input.npy"))
    want = kiln_run(os.path.join(SOURCE, "examples", "mlp", "model.onnx"),
                    [os.path.join(SOURCE, "examples", "mlp", "input.npy")], os.path.join(tmp, "batching"))[0]
    repo = write_repository(tmp, "batched", {"max_batch_size": 64, "max_queue_delay_us": 100000})
    s = Server(["--model-repository", repo])
    try:
        def one_row(i):
            row = i % shape[0]
            doc = s.json("POST", "/v2/models/batched/infer",
                         v2_request(datatype, [1, shape[1]], values[row * shape[1]:(row + 1) * shape[1]]))
            got = as_float32(doc["outputs"][0]["data"])
            assert got == want[2][row * 2:(row + 1) * 2], (row, got)
        run_concurrently(16, one_row)
        stats = s.json("GET", "/v2/models/batched/stats")["model_stats"][0]
        assert stats["inference_count"] == 16 and stats["execution_count"] < 16, stats
    finally:
        assert s.stop() == 0
    # a request that waits in the queue longer than queue_timeout_us is refused with 503
    repo = write_repository(tmp, "impatient", {"max_batch_size": 64, "max_queue_delay_us": 2000000,
                                               "queue_timeout_us": 1000})
    s = Server(["--model-repository", repo])
    try:
        got, _, data = s.request("POST", "/v2/models/impatient/infer", v2_request(datatype, shape, values))
        assert got == 503 and b"queue" in data, (got, data)
        assert s.request("GET", "/v2/health/ready")[0] == 200
    finally:
        assert s.stop() == 0


def test_repository_and_operations(tmp):
    log = os.path.join(tmp, "access.log")
    s = Server(["--model-repository", os.path.join(SOURCE, "examples", "repository"), "--access-log", log])
    datatype, shape, values = read_npy(os.path.join(SOURCE, "examples", "mlp", "input.npy"))
    try:
        assert s.request("GET", "/v2/health/live")[0] == 200
        meta = s.json("GET", "/v2")
        assert meta["name"] == "kiln" and "binary_tensor_data" in meta["extensions"], meta
        model = s.json("GET", "/v2/models/breast_cancer_gbdt")
        assert model["versions"] == ["1", "2"] and model["inputs"][0]["name"] == "features", model
        assert s.request("GET", "/v2/models/breast_cancer_gbdt/versions/1/ready")[0] == 200
        index = s.json("POST", "/v2/repository/index")
        assert sorted((e["name"], e.get("version")) for e in index) == [
            ("breast_cancer_gbdt", "1"), ("breast_cancer_gbdt", "2"), ("breast_cancer_mlp", "1")], index
        s.json("POST", "/v2/repository/models/breast_cancer_mlp/unload")
        assert s.request("GET", "/v2/models/breast_cancer_mlp/ready")[0] != 200
        got, _, data = s.request("POST", "/v2/models/breast_cancer_mlp/infer", v2_request(datatype, shape, values))
        assert got == 503 and b"not loaded" in data, (got, data)
        states = {e["name"]: e["state"] for e in s.json("POST", "/v2/repository/index")}
        assert states["breast_cancer_mlp"] == "UNAVAILABLE", states
        s.json("POST", "/v2/repository/models/breast_cancer_mlp/load")
        assert s.request("GET", "/v2/models/breast_cancer_mlp/ready")[0] == 200
        s.json("POST", "/v2/models/breast_cancer_mlp/infer", v2_request(datatype, shape, values, id="logged-id"))
        # a config given with the load call replaces config.json: only version 1 of the GBDT
        s.json("POST", "/v2/repository/models/breast_cancer_gbdt/load",
               {"parameters": {"config": json.dumps({"version_policy": {"specific": {"versions": [1]}}})}})
        assert s.json("GET", "/v2/models/breast_cancer_gbdt")["versions"] == ["1"]
        metrics = s.request("GET", "/metrics")[2].decode()
        for name in ("kiln_inference_request_success_total", "kiln_inference_count_total",
                     "kiln_inference_exec_count_total", "kiln_inference_queue_duration_us_total"):
            assert name in metrics, name
        assert "kiln_ready 1" in metrics
        stats = s.json("GET", "/v2/models/stats")
        assert any(m["name"] == "breast_cancer_mlp" for m in stats["model_stats"]), stats
    finally:
        assert s.stop() == 0
    with open(log) as f:
        lines = [json.loads(line) for line in f]
    assert any(e.get("id") == "logged-id" and e["status"] == 200 for e in lines), lines[-3:]


def test_polling_picks_up_changes(tmp):
    """--poll-seconds: a new version directory is loaded and served, a removed model becomes unavailable."""
    datatype, shape, values = read_npy(os.path.join(SOURCE, "examples", "mlp", "input.npy"))
    repo = write_repository(tmp, "polled", {"max_batch_size": 64})
    s = Server(["--model-repository", repo, "--poll-seconds", "0.1"])

    def wait_for(condition, what):
        end = time.time() + DEADLINE_S
        while not condition():
            assert time.time() < end, "polling never " + what
            time.sleep(0.05)
    try:
        assert s.json("GET", "/v2/models/polled")["versions"] == ["1"]
        shutil.copytree(os.path.join(repo, "polled", "1"), os.path.join(repo, "polled", "2"))
        wait_for(lambda: s.json("GET", "/v2/models/polled")["versions"] == ["2"], "loaded version 2")
        assert s.json("POST", "/v2/models/polled/infer", v2_request(datatype, shape, values))["model_version"] == "2"
        shutil.rmtree(os.path.join(repo, "polled"))
        wait_for(lambda: s.request("GET", "/v2/models/polled/ready")[0] != 200, "unloaded the removed model")
        states = {e["name"]: e["state"] for e in s.json("POST", "/v2/repository/index")}
        assert states == {"polled": "UNAVAILABLE"}, states
    finally:
        assert s.stop() == 0


class Load:
    """Client threads sending inference requests on keep-alive connections until stopped; counts outcomes."""

    def __init__(self, server, path, body, threads=4, reconnect_refused=False):
        self.server, self.path, self.body = server, path, json.dumps(body)
        self.ok = 0
        self.failures = []
        self.refused = 0
        self.stopping = False
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def run(self):
        conn = None
        while not self.stopping:
            try:
                if conn is None:
                    conn = self.server.connect()
                    conn.connect()
            except ConnectionRefusedError:
                with self.lock:
                    self.refused += 1  # the server is no longer accepting: not an accepted request
                conn = None
                time.sleep(0.01)
                continue
            try:
                conn.request("POST", self.path, body=self.body, headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                with self.lock:
                    if r.status == 200:
                        self.ok += 1
                    else:
                        self.failures.append("%d %r" % (r.status, data[:200]))
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:
                with self.lock:
                    self.failures.append("%s: %s" % (type(e).__name__, e))
                conn = None

    def stop(self):
        self.stopping = True
        for t in self.threads:
            t.join(DEADLINE_S)


def test_reload_under_load_loses_nothing(tmp):
    datatype, shape, values = read_npy(os.path.join(SOURCE, "examples", "mlp", "input.npy"))
    repo = write_repository(tmp, "swapped", {"max_batch_size": 64})
    s = Server(["--model-repository", repo])
    load = None
    try:
        load = Load(s, "/v2/models/swapped/infer", v2_request(datatype, shape, values))
        samples = []
        for i in range(100):
            s.json("POST", "/v2/repository/models/swapped/load")
            if i in (20, 99):
                samples.append(rss_kb(s.proc.pid))
        time.sleep(0.2)
        load.stop()
        assert not load.failures, "%d requests failed during reloads, e.g. %s" % (len(load.failures),
                                                                                load.failures[:3])
        assert load.ok > 20, load.ok
        # memory after 100 reloads is what it was after 20: every old version was freed (under AddressSanitizer
        # freed memory sits in quarantine, so there LeakSanitizer's check at exit stands in for this one)
        growth = samples[1] - samples[0]
        assert SANITIZED or growth < 4096, "resident memory grew by %d kB between reload 20 and 100" % growth
        print("  reloads: 100 under load, %d requests answered, none failed; RSS %d kB -> %d kB" % (
            load.ok, samples[0], samples[1]))
        # unloading returns the memory too: 30 unload/load cycles end where they started
        before = rss_kb(s.proc.pid)
        for _ in range(30):
            s.json("POST", "/v2/repository/models/swapped/unload")
            s.json("POST", "/v2/repository/models/swapped/load")
        growth = rss_kb(s.proc.pid) - before
        assert SANITIZED or growth < 4096, "resident memory grew by %d kB over 30 unload/load cycles" % growth
    finally:
        if load:
            load.stop()
        assert s.stop() == 0


def test_sigterm_drains(tmp):
    datatype, shape, values = read_npy(os.path.join(SOURCE, "examples", "mlp", "input.npy"))
    # a wait for batches to fill keeps requests queued at the moment SIGTERM arrives
    repo = write_repository(tmp, "drained", {"max_batch_size": 64, "max_queue_delay_us": 20000})
    s = Server(["--model-repository", repo])
    load = Load(s, "/v2/models/drained/infer", v2_request(datatype, shape, values), threads=8)
    try:
        time.sleep(1.0)
        before = load.ok
        s.proc.send_signal(signal.SIGTERM)
        s.proc.wait(timeout=DEADLINE_S)
        assert s.proc.returncode == 0, s.stderr()
        time.sleep(0.1)
        load.stop()
        assert not load.failures, "%d accepted requests were not answered, e.g. %s" % (len(load.failures),
                                                                                     load.failures[:3])
        assert before > 0 and load.ok >= before, (before, load.ok)
        print("  drain: %d requests answered, %d connection attempts refused after the listener closed" % (
            load.ok, load.refused))
    finally:
        load.stop()
        s.stop()


def test_non_tensor_outputs_are_refused_at_load(tmp):
    """ZipMap's sequence of maps has no V2 form: loading says so and exits, it does not serve garbage."""
    model = os.path.join(SOURCE, "tests", "ml", "onnxml", "data", "iris_forest_zipmap", "model.onnx")
    r = subprocess.run([KILN, "serve", "--port", "0", model], capture_output=True, text=True, timeout=DEADLINE_S)
    assert r.returncode == 1, "exit %d: %s" % (r.returncode, r.stderr)
    assert "output 'output_probability' is a sequence, map or optional" in r.stderr, r.stderr


def main():
    global KILN, SOURCE, SANITIZED
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    KILN, SOURCE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    with open(KILN, "rb") as f:
        SANITIZED = b"__asan_init" in f.read()
    tests = [test_outputs_equal_kiln_run, test_every_datatype, test_errors_are_4xx_and_the_server_keeps_serving,
             test_mangled_requests, test_dynamic_batching,
             test_repository_and_operations, test_polling_picks_up_changes, test_limits, test_reload_under_load_loses_nothing, test_sigterm_drains,
             test_non_tensor_outputs_are_refused_at_load]
    only = os.environ.get("KILN_SERVE_TEST")
    failed = 0
    for test in tests:
        if only and only not in test.__name__:
            continue
        tmp = tempfile.mkdtemp(prefix="kiln-serve-test-")
        start = time.time()
        try:
            test(tmp)
            print("ok    %s (%.1f s)" % (test.__name__, time.time() - start))
        except Exception:
            failed += 1
            print("FAIL  %s\n%s" % (test.__name__, traceback.format_exc()))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        sys.stdout.flush()
    print("%d of %d serve tests failed" % (failed, len(tests)) if failed else "all serve tests passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
