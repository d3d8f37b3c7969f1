#!/usr/bin/python3
"""`kiln batch` end to end.

    /usr/bin/python3 tests/batch/test_batch.py --kiln build/kiln [--lightgbm DIR] [--filter WORD] [--verbose]

Checks, each printed on one line, then "N passed, N failed":
  - every input format (CSV, TSV, JSON Lines, .npy, gzip, zstd, standard input) and output format (CSV, JSON
    Lines, .npy, standard output) gives exactly `kiln run`'s outputs on the same rows, in input order, with the
    --id columns intact (ids that need CSV quoting included), for the example MLP, the XGBoost fixtures of
    tests/ml/xgboost (whose predictions also match XGBoost's own) and the LightGBM vectors when present;
  - malformed rows land in the --errors file with their line numbers and reasons, and the job goes on;
    --max-error-rate fails it; bad quoting, \\r\\n and blank lines are handled;
  - 2 threads write the same bytes as 1; shards 0..N-1 concatenated equal the unsharded output;
  - runs killed with SIGKILL at random moments and resumed give byte-identical output and errors files;
  - a missing or malformed model, an unreadable input and a full disk (RLIMIT_FSIZE) fail with exit 1 and a
    one-line reason, and leave nothing under the output's name; a full-disk run resumes once there is room.
Everything is written under a temporary directory. Only numpy is needed.
"""
import argparse
import csv
import glob
import gzip
import io
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MLP = os.path.join(ROOT, "examples", "mlp", "model.onnx")
XGB = os.path.join(ROOT, "tests", "ml", "xgboost")
CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


class Env:
    def __init__(self, kiln, work, lightgbm, verbose):
        self.kiln, self.work, self.lightgbm, self.verbose = kiln, work, lightgbm, verbose
        self.count = 0

    def path(self, name):
        self.count += 1
        return os.path.join(self.work, f"{self.count:03d}_{name}")

    def batch(self, *args, ok=True, stdin=None, limits=None, timeout=120):
        cmd = [self.kiln, "batch", *map(str, args)]
        preexec = (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limits, limits))) if limits else None
        r = subprocess.run(cmd, capture_output=True, input=stdin, timeout=timeout, preexec_fn=preexec)
        if self.verbose:
            print("  $", " ".join(cmd), "->", r.returncode, r.stderr.decode(errors="replace").strip()[:300])
        if ok and r.returncode != 0:
            raise AssertionError(f"kiln batch failed ({r.returncode}): {r.stderr.decode(errors='replace').strip()}")
        return r

    def run(self, model, x, raw=False):
        """kiln run's outputs on x, as a list of arrays."""
        d = tempfile.mkdtemp(dir=self.work)
        np.save(os.path.join(d, "x.npy"), x)
        cmd = [self.kiln, "run", model, os.path.join(d, "x.npy"), "-o", d] + (["--raw"] if raw else [])
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError(f"kiln run failed: {r.stderr.strip()}")
        outs = []
        while os.path.exists(os.path.join(d, f"output_{len(outs)}.npy")):
            outs.append(np.load(os.path.join(d, f"output_{len(outs)}.npy")))
        return outs


# ---- data ------------------------------------------------------------------------------------------------------

def fmt(v):
    return "" if np.isnan(v) else "%.9g" % v


def ids_for(n):
    """Ids that need quoting in CSV (commas, quotes) and escaping in JSON."""
    return [f'r{i}' if i % 3 else f'row {i}, "q"' for i in range(n)]


def write_csv(path, x, ids=None, delimiter=",", newline="\n", names=None):
    names = names or [f"f{j}" for j in range(x.shape[1])]
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter=delimiter, lineterminator=newline)
        w.writerow((["key"] if ids is not None else []) + names)
        for i, row in enumerate(x):
            w.writerow(([ids[i]] if ids is not None else []) + [fmt(v) for v in row])


def write_jsonl(path, x, ids=None, as_array=None):
    with open(path, "w") as f:
        for i, row in enumerate(x):
            obj = {"key": ids[i]} if ids is not None else {}
            values = [None if np.isnan(v) else float(v) for v in row]
            if as_array:
                obj[as_array] = values
            else:
                obj.update({f"f{j}": v for j, v in enumerate(values)})
            f.write(json.dumps(obj) + "\n")


def expected_table(model_outputs, names):
    """Columns as kiln batch writes them: NAME or NAME_j, per row."""
    columns, values = [], []
    for name, out in zip(names, model_outputs):
        flat = out.reshape(out.shape[0], -1)
        for j in range(flat.shape[1]):
            columns.append(name if flat.shape[1] == 1 else f"{name}_{j}")
            values.append(flat[:, j])
    return columns, values


def output_names(env, model):
    r = subprocess.run([env.kiln, "info", model], capture_output=True, text=True)
    names, section = [], None
    for line in r.stdout.splitlines():
        if line.startswith("outputs:"):
            section = True
        elif section and line.startswith("  "):
            names.append(line.split()[1])
        elif section:
            break
    return names


def read_output(path, kind):
    if kind == "npy":
        return None, np.load(path)
    if kind == "jsonl":
        rows = [json.loads(line) for line in open(path)]
        return rows, None
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter="\t" if path.endswith(".tsv") else ",")), None


def same_value(text, want):
    want = np.asarray(want)
    if want.dtype.kind == "f":
        got = want.dtype.type(float(text)) if text not in ("", None) else np.nan
        if np.isnan(want):
            return np.isnan(got)
        return got == want
    if want.dtype == np.bool_:
        return str(text).lower() == str(bool(want)).lower()
    return int(text) == int(want)


def compare(path, kind, columns, values, ids=None):
    rows, array = read_output(path, kind)
    n = len(values[0])
    if kind == "npy":
        want = np.stack([v.astype(array.dtype) for v in values], axis=1)
        assert array.shape == want.shape, f"shape {array.shape}, expected {want.shape}"
        assert np.array_equal(array, want, equal_nan=True), "values differ"
        return
    if kind == "jsonl":
        assert len(rows) == n, f"{len(rows)} rows, expected {n}"
        for i, obj in enumerate(rows):
            keys = (["key"] if ids is not None else []) + columns
            assert list(obj.keys()) == keys, f"row {i}: keys {list(obj.keys())}, expected {keys}"
            if ids is not None:
                assert obj["key"] == ids[i], f"row {i}: id {obj['key']!r}, expected {ids[i]!r}"
            for c, v in zip(columns, values):
                assert same_value(obj[c], v[i]), f"row {i} {c}: {obj[c]!r}, expected {v[i]!r}"
        return
    header = (["key"] if ids is not None else []) + columns
    assert rows[0] == header, f"header {rows[0]}, expected {header}"
    assert len(rows) - 1 == n, f"{len(rows) - 1} rows, expected {n}"
    for i, row in enumerate(rows[1:]):
        if ids is not None:
            assert row[0] == ids[i], f"row {i}: id {row[0]!r}, expected {ids[i]!r}"
            row = row[1:]
        for c, text, v in zip(columns, row, values):
            assert same_value(text, v[i]), f"row {i} {c}: {text!r}, expected {v[i]!r}"


# ---- equality with kiln run -----------------------------------------------------------------------------------

def xgboost_models():
    return sorted(glob.glob(os.path.join(XGB, "*", "model.json")))


def every_input_format(env, model, x, columns, values, tag):
    """Each input format and compression, CSV output with ids."""
    ids = ids_for(len(x))
    csv_path = env.path(f"{tag}.csv")
    write_csv(csv_path, x, ids)
    cases = {"csv": csv_path}
    tsv = env.path(f"{tag}.tsv")
    write_csv(tsv, x, ids, delimiter="\t", newline="\r\n")
    cases["tsv with \\r\\n"] = tsv
    jl = env.path(f"{tag}.jsonl")
    write_jsonl(jl, x, ids)
    cases["jsonl"] = jl
    gz = env.path(f"{tag}.csv.gz")
    with open(csv_path, "rb") as src, gzip.open(gz, "wb") as dst:
        dst.write(src.read())
    cases["gzip"] = gz
    zst = env.path(f"{tag}.data")  # no telling extension: recognised by content
    subprocess.run(["zstd", "-q", "-f", csv_path, "-o", zst], check=True)
    cases["zstd"] = zst
    for name, path in cases.items():
        out = env.path(f"{tag}_{name.split()[0]}.csv")
        env.batch(model, path, "-o", out, "--id", "key", "--quiet")
        compare(out, "csv", columns, values, ids)
    out = env.path(f"{tag}_stdin.csv")
    r = env.batch(model, "-", "-o", "-", "--id", "key", "--quiet", stdin=open(csv_path, "rb").read())
    open(out, "wb").write(r.stdout)
    compare(out, "csv", columns, values, ids)
    npy = env.path(f"{tag}.npy")
    np.save(npy, x)
    out = env.path(f"{tag}_from_npy.csv")
    env.batch(model, npy, "-o", out, "--quiet")
    compare(out, "csv", columns, values)
    return len(cases) + 2


@check
def mlp_every_format_matches_kiln_run(env):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((300, 30)) * 50 + 100).astype(np.float32)
    columns, values = expected_table(env.run(MLP, x), output_names(env, MLP))
    n = every_input_format(env, MLP, x, columns, values, "mlp")
    for kind in ("jsonl", "npy", "tsv"):
        out = env.path(f"mlp_out.{kind}")
        ids_args = ["--id", "key"] if kind != "npy" else []
        src = env.path("mlp_ids.csv")
        write_csv(src, x, ids_for(len(x)) if ids_args else None)
        env.batch(MLP, src, "-o", out, *ids_args, "--quiet")
        compare(out, "csv" if kind == "tsv" else kind, columns, values, ids_for(len(x)) if ids_args else None)
    return f"{n} input and 3 output formats"


@check
def xgboost_fixtures_match_kiln_run_and_xgboost(env):
    done = 0
    for model in xgboost_models():
        d = os.path.dirname(model)
        x = np.load(os.path.join(d, "input.npy"))
        outs = env.run(model, x)
        columns, values = expected_table(outs, output_names(env, model))
        name = os.path.basename(d)
        if name in ("binary_logistic", "multi_softprob"):
            every_input_format(env, model, x, columns, values, name)
        else:
            src = env.path(f"{name}.csv")
            write_csv(src, x, ids_for(len(x)))
            out = env.path(f"{name}_out.csv")
            env.batch(model, src, "-o", out, "--id", "key", "--quiet")
            compare(out, "csv", columns, values, ids_for(len(x)))
        # and the library's own predictions (the probability of class 1, the class probabilities, the values)
        predict = np.load(os.path.join(d, "predict.npy"))
        got = dict(zip(columns, values))
        if name == "binary_logistic":
            assert np.allclose(got["probabilities_1"], predict, rtol=0, atol=1e-6), "differs from xgboost"
        elif name == "multi_softprob":
            assert np.allclose(np.stack([got[f"probabilities_{j}"] for j in range(3)], 1), predict, atol=1e-6)
        elif name == "reg_two_targets":
            assert np.allclose(np.stack([got["variable_0"], got["variable_1"]], 1), predict, rtol=1e-6, atol=1e-6)
        done += 1
    return f"{done} models"


@check
def lightgbm_vectors_match_kiln_run(env):
    if not env.lightgbm or not os.path.isdir(env.lightgbm):
        return "skipped: LightGBM vectors absent"
    done = 0
    for model in sorted(glob.glob(os.path.join(env.lightgbm, "*", "model.txt"))):
        d = os.path.dirname(model)
        x = np.load(os.path.join(d, "input.npy")).astype(np.float32)
        try:
            outs = env.run(model, x)
        except AssertionError:
            continue  # a model kiln run refuses is the loader's business, tested elsewhere
        columns, values = expected_table(outs, output_names(env, model))
        src = env.path("lgbm.csv")
        write_csv(src, x)
        out = env.path("lgbm_out.csv")
        env.batch(model, src, "-o", out, "--quiet")
        compare(out, "csv", columns, values)
        done += 1
    return f"{done} models"


@check
def json_lines_by_name_and_arrays(env):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((50, 30)).astype(np.float32)
    columns, values = expected_table(env.run(MLP, x), ["probabilities"])
    src = env.path("arrays.jsonl")
    write_jsonl(src, x, ids=[i * 7 for i in range(50)], as_array="features")
    out = env.path("arrays_out.jsonl")
    env.batch(MLP, src, "-o", out, "--id", "key", "--quiet")
    compare(out, "jsonl", columns, values, [i * 7 for i in range(50)])  # numeric ids stay numbers
    # --columns picks and orders columns by name; extra columns are ignored
    names = [f"c{j}" for j in range(30)]
    src = env.path("named.csv")
    shuffled = np.concatenate([x[:, ::-1], x[:, :3]], axis=1)
    write_csv(src, shuffled, names=names[::-1] + ["extra1", "extra2", "extra3"])
    out = env.path("named_out.csv")
    env.batch(MLP, src, "-o", out, "--columns", ",".join(names), "--quiet")
    compare(out, "csv", columns, values)
    return "arrays, numeric ids, --columns"


@check
def fixed_batch_models_run_in_padded_batches(env):
    """tiny_cnn fixes its batch to 2 images: 5 rows run as 2 + 2 + (1 + a zero row), outputs of real rows only."""
    model = os.path.join(ROOT, "tests", "models", "data", "tiny_cnn", "model.onnx")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 3, 32, 32)).astype(np.float32)
    padded = np.concatenate([x, np.zeros((1, 3, 32, 32), np.float32)])
    want = np.concatenate([env.run(model, padded[i:i + 2])[0] for i in range(0, 6, 2)])[:5]
    src, out = env.path("images.npy"), env.path("logits.npy")
    np.save(src, x)
    env.batch(model, src, "-o", out, "--quiet", "--batch-size", 3)
    got = np.load(out)
    assert got.shape == (5, 10) and np.array_equal(got, want), f"shape {got.shape} or values differ"
    return "batch fixed to 2, 5 rows"


# ---- bad rows --------------------------------------------------------------------------------------------------

def mlp_rows_with_errors(env, n=40):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, 30)).astype(np.float32)
    lines = ["key," + ",".join(f"f{j}" for j in range(30))]
    bad = {}
    for i in range(n):
        fields = [f"k{i}"] + [fmt(v) for v in x[i]]
        if i % 10 == 3:
            fields[5] = "abc"
            bad[len(lines) + 1] = "is not a number"
        elif i % 10 == 6:
            fields = fields[:-2]
            bad[len(lines) + 1] = "has 29 fields"
        lines.append(",".join(fields))
        if i == 20:
            lines.append("")  # a blank line is not a row
        if i == 30:
            lines.append('k_open,"never closed,1,2')  # must not swallow the lines after it
            bad[len(lines)] = "quoted field is not closed"
    lines.append('k_broken,"unclosed,1,2')
    bad[len(lines)] = "quoted field is not closed"
    return x, lines, bad


@check
def malformed_rows_go_to_the_errors_file(env):
    x, lines, bad = mlp_rows_with_errors(env)
    src = env.path("bad.csv")
    open(src, "w").write("\n".join(lines) + "\n")
    out, errors = env.path("bad_out.csv"), env.path("bad_errors.jsonl")
    r = env.batch(MLP, src, "-o", out, "--id", "key", "--errors", errors)
    entries = [json.loads(line) for line in open(errors)]
    assert [e["line"] for e in entries] == sorted(bad), f"lines {[e['line'] for e in entries]}, expected {sorted(bad)}"
    for e in entries:
        assert bad[e["line"]] in e["reason"], f"line {e['line']}: reason {e['reason']!r}"
        assert e["raw"] == lines[e["line"] - 1], f"line {e['line']}: raw {e['raw']!r}"
    good = [i for i in range(len(x)) if i % 10 not in (3, 6)]
    columns, values = expected_table(env.run(MLP, x[good]), ["probabilities"])
    compare(out, "csv", columns, values, [f"k{i}" for i in good])
    summary = r.stderr.decode()
    assert f"{len(x) + 2} rows in, {len(good)} out, {len(bad)} rejected" in summary, summary
    # without --errors the rejected rows are shown on stderr
    r = env.batch(MLP, src, "-o", env.path("bad_out2.csv"), "--id", "key")
    assert f"{src} line 5: column 'f4': 'abc' is not a number" in r.stderr.decode(), r.stderr
    # --max-error-rate: 10 of 42 rows is above 10%; the job fails, no output appears, the errors file does
    out3, errors3 = env.path("bad_out3.csv"), env.path("bad_errors3.jsonl")
    r = env.batch(MLP, src, "-o", out3, "--id", "key", "--errors", errors3, "--max-error-rate", "0.1", ok=False)
    assert r.returncode == 1 and b"--max-error-rate" in r.stderr, r.stderr
    assert not os.path.exists(out3) and not os.path.exists(out3 + ".partial") and os.path.exists(errors3)
    env.batch(MLP, src, "-o", out3, "--id", "key", "--max-error-rate", "0.5", "--quiet")
    return f"{len(bad)} bad rows with line numbers"


@check
def quoting_and_multiline_fields(env):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 30)).astype(np.float32)
    ids = ["plain", 'has "quotes"', "has,comma", "two\nlines", ""]
    src = env.path("quoted.csv")
    write_csv(src, x, ids)
    out = env.path("quoted_out.csv")
    env.batch(MLP, src, "-o", out, "--id", "key", "--quiet")
    columns, values = expected_table(env.run(MLP, x), ["probabilities"])
    compare(out, "csv", columns, values, ids)
    out = env.path("quoted_out.jsonl")
    env.batch(MLP, src, "-o", out, "--id", "key", "--quiet")
    compare(out, "jsonl", columns, values, ids)
    return "ids with quotes, commas, newlines"


# ---- determinism: threads, shards, resume -------------------------------------------------------------------

def big_csv(env, rows, seed=5, bad_every=997):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 30)).astype(np.float32)
    path = env.path(f"big{rows}.csv")
    with open(path, "w") as f:
        f.write("key," + ",".join(f"f{j}" for j in range(30)) + "\n")
        for i in range(rows):
            row = [fmt(v) for v in x[i]]
            if i % bad_every == 5:
                row[2] = "oops"
            f.write(f"k{i}," + ",".join(row) + "\n")
    return path


@check
def two_threads_write_the_same_bytes_as_one(env):
    src = big_csv(env, 20000)
    outs = []
    for threads in (1, 2, 3):
        out, errors = env.path(f"t{threads}.csv"), env.path(f"t{threads}.errors")
        env.batch(MLP, src, "-o", out, "--id", "key", "--threads", threads, "--batch-size", 333, "--errors", errors,
                  "--quiet")
        outs.append((open(out, "rb").read(), open(errors, "rb").read()))
    assert outs[0] == outs[1] == outs[2], "outputs differ between thread counts"
    return "1, 2, 3 threads"


@check
def shards_concatenate_to_the_unsharded_output(env):
    src = big_csv(env, 12000)
    model = os.path.join(XGB, "binary_logistic", "model.json")
    full = env.path("unsharded.csv")
    env.batch(model, src, "-o", full, "--id", "key", "--quiet", "--batch-size", 1000)
    want = open(full, "rb").read()
    for n in (1, 2, 3, 7):
        parts = []
        for i in range(n):
            out = env.path(f"shard{i}of{n}.csv")
            env.batch(model, src, "-o", out, "--id", "key", "--shard", f"{i}/{n}", "--quiet", "--batch-size", 1000)
            parts.append(open(out, "rb").read())
        assert b"".join(parts) == want, f"{n} shards differ from the unsharded output"
    # many files, some compressed: shards take whole files
    files = []
    with open(src) as f:
        header, body = f.readline(), f.readlines()
    for k in range(5):
        path = env.path(f"part{k}.csv")
        open(path, "w").write(header + "".join(body[k * 2400:(k + 1) * 2400]))
        if k % 2:
            subprocess.run(["gzip", "-f", path], check=True)
            path += ".gz"
        files.append(path)
    full = env.path("files_unsharded.csv")
    env.batch(model, *files, "-o", full, "--id", "key", "--quiet")
    assert open(full, "rb").read() == want, "five files differ from one"
    parts = []
    for i in range(3):
        out = env.path(f"fileshard{i}.csv")
        env.batch(model, *files, "-o", out, "--id", "key", "--shard", f"{i}/3", "--quiet")
        parts.append(open(out, "rb").read())
    assert b"".join(parts) == want, "file shards differ from the unsharded output"
    return "1, 2, 3, 7 byte-range shards; 3 shards of 5 files"


@check
def sigkill_and_resume_give_identical_output(env):
    src = big_csv(env, 60000, seed=6)
    args = ["--id", "key", "--batch-size", 200, "--checkpoint-seconds", 0, "--threads", 2]
    ref, ref_errors = env.path("ref.csv"), env.path("ref.errors")
    start = time.perf_counter()
    env.batch(MLP, src, "-o", ref, "--errors", ref_errors, *args, "--quiet")
    elapsed = time.perf_counter() - start
    rnd = random.Random(int(os.environ.get("KILN_TEST_SEED", "0")) or None)
    kills = attempt = 0
    while attempt < 3 or (kills < 3 and attempt < 10):  # at least 3 resumed runs and 3 kills that landed
        attempt += 1
        out, errors = env.path(f"killed{attempt}.csv"), env.path(f"killed{attempt}.errors")
        cmd = [env.kiln, "batch", MLP, src, "-o", out, "--errors", errors, *map(str, args), "--quiet", "--resume"]
        for _ in range(4):  # killed up to four times, each time resumed
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(rnd.uniform(0.02, 0.6) * elapsed)
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                kills += 1
            p.wait()
            if p.returncode == 0:
                break  # finished before the kill
            if os.path.exists(out):  # killed after the output's final rename: it must be whole already
                assert open(out, "rb").read() == open(ref, "rb").read(), "an output file exists after a kill"
                break
        r = subprocess.run(cmd, capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert open(out, "rb").read() == open(ref, "rb").read(), f"attempt {attempt}: output differs"
        assert open(errors, "rb").read() == open(ref_errors, "rb").read(), f"attempt {attempt}: errors differ"
        assert not os.path.exists(out + ".partial") and not os.path.exists(out + ".checkpoint")
    assert kills >= 3, f"only {kills} kills landed"
    return f"{kills} kills, {attempt} resumed runs byte-identical"


@check
def resume_refuses_another_jobs_checkpoint(env):
    src = big_csv(env, 3000)
    out = env.path("other.csv")
    env.batch(MLP, src, "-o", out, "--id", "key", "--quiet")
    open(out + ".checkpoint", "w").write("kiln-batch-checkpoint 1\nhash 0123456789abcdef\ncomplete 0\nfile 0\n"
                                        "offset 10\nline 2\nrows_in 0\nrows_out 0\nrejected 0\noutput_bytes 0\n"
                                        "errors_bytes 0\ncolumns 2\n")
    open(out + ".partial", "w").write("")
    r = env.batch(MLP, src, "-o", out, "--id", "key", "--resume", ok=False)
    assert r.returncode == 1 and b"another job" in r.stderr, r.stderr
    return "hash mismatch refused"


# ---- failures that stop the job --------------------------------------------------------------------------------

def assert_clean_failure(r, out, words):
    assert r.returncode == 1, f"exit {r.returncode}"
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and words in lines[0], f"stderr {r.stderr!r}, expected one line with {words!r}"
    assert not os.path.exists(out), "the output exists"


@check
def failures_are_clean(env):
    src = big_csv(env, 100)
    out = env.path("never.csv")
    assert_clean_failure(env.batch(env.path("missing.onnx"), src, "-o", out, ok=False), out, "cannot open")
    garbage = env.path("garbage.onnx")
    open(garbage, "wb").write(b"\x08\x07\x12\xff\xff\xff garbage that is no model")
    assert_clean_failure(env.batch(garbage, src, "-o", out, ok=False), out, "garbage.onnx")
    assert_clean_failure(env.batch(MLP, env.path("missing.csv"), "-o", out, ok=False), out, "cannot open")
    assert_clean_failure(env.batch(MLP, env.work, "-o", out, ok=False), out, "directory")
    assert_clean_failure(env.batch(MLP, src, "-o", out, "--id", "nope", ok=False), out, "no column 'nope'")
    r = env.batch(MLP, src, "-o", out, "--bogus", ok=False)
    assert r.returncode == 2, r.returncode
    return "missing/garbage model, missing/directory input, bad --id, bad option"


@check
def full_disk_fails_cleanly_and_resumes(env):
    src = big_csv(env, 20000)
    ref = env.path("disk_ref.csv")
    env.batch(MLP, src, "-o", ref, "--id", "key", "--quiet")
    out = env.path("disk.csv")
    args = [MLP, src, "-o", out, "--id", "key", "--checkpoint-seconds", 0, "--batch-size", 500, "--errors",
            env.path("disk.errors")]
    r = env.batch(*args, ok=False, limits=200_000)  # the file size limit: writes fail with EFBIG
    assert_clean_failure(r, out, "File too large")
    assert b"--resume" in r.stderr and os.path.exists(out + ".partial")
    env.batch(*args, "--resume", "--quiet")
    assert open(out, "rb").read() == open(ref, "rb").read(), "resumed output differs"
    return "EFBIG at 200 kB, resumed byte-identical"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kiln", required=True)
    parser.add_argument("--lightgbm", default=os.path.join(ROOT, "..", "shared", "testdata", "lightgbm"))
    parser.add_argument("--filter", default="")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="kiln-batch-test-")
    env = Env(os.path.abspath(args.kiln), work, args.lightgbm, args.verbose)
    passed = failed = 0
    try:
        for fn in CHECKS:
            if args.filter not in fn.__name__:
                continue
            start = time.perf_counter()
            try:
                note = fn(env)
                passed += 1
                print(f"PASS {fn.__name__} ({note}, {time.perf_counter() - start:.1f} s)", flush=True)
            except Exception as e:  # noqa: BLE001 - every failure is reported, then the next check runs
                failed += 1
                print(f"FAIL {fn.__name__}: {type(e).__name__}: {e}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
