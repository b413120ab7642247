#!/usr/bin/env python3
"""The Python side of the encoder benchmark: the same encoder.int8.onnx and tokenizer.json run
by Python onnxruntime 1.31.1 + tokenizers, measured the same way as examples/bench_encoder.rs
(tokenization included). Prints one JSON object.

Usage: bench_encoder.py SENTENCES_FILE MODEL_DIR [THREADS]"""
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
    sess = ort.InferenceSession(os.path.join(model_dir, "encoder.int8.onnx"), opts, providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.enable_truncation(512)
    load_s = time.perf_counter() - t

    def embed(texts):
        enc = [tok.encode("query: " + s.strip()) for s in texts]
        n = max(len(e.ids) for e in enc)
        ids = np.ones((len(enc), n), dtype=np.int64)
        mask = np.zeros((len(enc), n), dtype=np.int64)
        for i, e in enumerate(enc):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        return sess.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask})[0]

    embed(sentences[:8])
    lat = []
    t = time.perf_counter()
    for s in sentences:
        a = time.perf_counter()
        embed([s])
        lat.append((time.perf_counter() - a) * 1000)
    single_per_s = len(sentences) / (time.perf_counter() - t)
    lat.sort()
    order = sorted(range(len(sentences)), key=lambda i: len("query: " + sentences[i]))
    rounds = 2
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
        "load_s": load_s,
        "single_per_s": single_per_s,
        "single_p50_ms": pct(0.5),
        "single_p99_ms": pct(0.99),
        "batched32_per_s": batched_per_s,
        "rss_mib": rss_mib(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }))


if __name__ == "__main__":
    main()
