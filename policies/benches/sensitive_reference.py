"""Python ahocorasick-rs on the same word list and corpus as bench_sensitive, for a ratio.

Like bench_sensitive, every throughput is given over wall-clock time and over the time the
thread was on a CPU (time.thread_time), which a loaded machine disturbs much less."""
import sys
import time

import ahocorasick_rs

words_path, corpus_path = sys.argv[1], sys.argv[2]
words = [line.strip() for line in open(words_path, encoding="utf-8") if line.strip()]
text = open(corpus_path, encoding="utf-8").read()
size = len(text.encode("utf-8"))


def timed(work):
    cpu, wall = time.thread_time(), time.perf_counter()
    result = work()
    return result, time.perf_counter() - wall, time.thread_time() - cpu


def rates(wall, cpu):
    return f"{size / 1e6 / wall:7.1f} MB/s wall, {size / 1e6 / cpu:7.1f} MB/s on-CPU"


automaton, build, _ = timed(lambda: ahocorasick_rs.AhoCorasick(words))
print(f"python ahocorasick-rs {getattr(ahocorasick_rs, '__version__', '')}: build {build * 1e3:.0f} ms")

for _ in range(2):
    matches, wall, cpu = timed(lambda: automaton.find_matches_as_indexes(text))
    print(f"python whole corpus, non-overlapping: {rates(wall, cpu)}, {len(matches)} matches")

matches, wall, cpu = timed(lambda: automaton.find_matches_as_indexes(text, overlapping=True))
print(f"python whole corpus, overlapping:     {rates(wall, cpu)}, {len(matches)} matches")

messages = text.split("\n")
for _ in range(2):
    count, wall, cpu = timed(lambda: sum(len(automaton.find_matches_as_indexes(m)) for m in messages))
    print(f"python per message, non-overlapping:  {rates(wall, cpu)}, {count} matches")
