#!/usr/bin/env python3
"""The Python side of the encoder benchmark: the same encoder.int8.onnx and tokenizer.json run
by Python onnxruntime 1.31.1 + tokenizers, measured the same way as examples/bench_encoder.rs
(tokenization included). Prints one JSON object.

Usage: bench_encoder.py SENTENCES_FILE MODEL_DIR [THREADS] [SPINNING]

SPINNING: `on` (onnxruntime's default, not set) or `off` (session.intra_op.allow_spinning=0, as
the Rust product default). `stages_ms` is the mean time per run of each stage."""
import json
import os
import resource
import sys
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def main():
    sentences = [l.strip() for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
    model_dir = sys.argv[2]
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else os.cpu_count()
    t = time.perf_counter()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    spinning = (sys.argv[4] if len(sys.argv) > 4 else "on") == "on"
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(os.path.join(model_dir, "encoder.int8.onnx"), opts, providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.enable_truncation(512)
    load_s = time.perf_counter() - t

    stages = None

    def embed(texts):
        t0 = time.perf_counter()
        enc = [tok.encode("query: " + s.strip()) for s in texts]
        t1 = time.perf_counter()
        n = max(len(e.ids) for e in enc)
        ids = np.ones((len(enc), n), dtype=np.int64)
        mask = np.zeros((len(enc), n), dtype=np.int64)
        for i, e in enumerate(enc):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        t2 = time.perf_counter()
        out = sess.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask})[0]
        t3 = time.perf_counter()
        if stages is not None:
            stages["runs"] += 1
            stages["tokenize"] += t1 - t0
            stages["inputs"] += t2 - t1
            stages["run"] += t3 - t2
        return out

    def per_run(s):
        r = max(1, s["runs"])
        out = {"runs": s["runs"]}
        for k in ("tokenize", "inputs", "run"):
            out[k] = s[k] * 1000 / r
        out["total"] = sum(out[k] for k in ("tokenize", "inputs", "run"))
        return out

    embed(sentences[:8])
    lat = []
    stages = single_stages = {"runs": 0, "tokenize": 0.0, "inputs": 0.0, "run": 0.0}
    t = time.perf_counter()
    for s in sentences:
        a = time.perf_counter()
        embed([s])
        lat.append((time.perf_counter() - a) * 1000)
    single_per_s = len(sentences) / (time.perf_counter() - t)
    lat.sort()
    order = sorted(range(len(sentences)), key=lambda i: len("query: " + sentences[i]))
    rounds = 2
    stages = batched_stages = {"runs": 0, "tokenize": 0.0, "inputs": 0.0, "run": 0.0}
    t = time.perf_counter()
    for _ in range(rounds):
        for k in range(0, len(order), 32):
            embed([sentences[i] for i in order[k : k + 32]])
    batched_per_s = rounds * len(sentences) / (time.perf_counter() - t)
    pct = lambda p: lat[min(len(lat) - 1, round((len(lat) - 1) * p))]
    print(json.dumps({
        "runtime": f"python onnxruntime {ort.__version__} + tokenizers",
        "sentences": len(sentences),
        "threads": threads,
        "intra_op_spinning": spinning,
        "load_s": load_s,
        "single_per_s": single_per_s,
        "single_p50_ms": pct(0.5),
        "single_p99_ms": pct(0.99),
        "batched32_per_s": batched_per_s,
        "rss_mib": rss_mib(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "stages_ms": {"single": per_run(single_stages), "batched32": per_run(batched_stages)},
    }))


if __name__ == "__main__":
    main()
