"""`kekong prompt expand` speed once the tag cache is warm (goal ≤ 50 ms per expansion)."""

from __future__ import annotations

import statistics
import time

from kekong.prompt.expand import expand, tag_embeddings

SENTENCES = ("a girl walking in the rain at night", "a knight fighting a dragon in a castle",
             "a cat sleeping by the window in the morning", "cyberpunk city street with neon lights",
             "an old man fishing on a lake at sunset, oil painting")


def main() -> None:
    start = time.perf_counter()
    tag_embeddings()  # from the disk cache, or built once
    print(f"tag embeddings ready in {1000 * (time.perf_counter() - start):.0f} ms")
    expand(SENTENCES[0])  # warm-up: loads MiniLM
    times = []
    for round_ in range(5):
        for text in SENTENCES:
            start = time.perf_counter()
            expand(text, seed=round_)
            times.append(1000 * (time.perf_counter() - start))
    print(f"expand: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms over {len(times)} runs "
          "(goal ≤ 50 ms)")


if __name__ == "__main__":
    main()
