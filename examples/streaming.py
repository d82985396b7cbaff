"""A generator function whose items stream back while it is still running.

Run it with `surge run examples/streaming.py` (or `... --prompt "your words"`).

Calling a generator function with `.remote_gen()` returns an iterator: each `yield` in the container
reaches the caller as soon as it is produced, the way tokens of a language model's answer would,
rather than all at once when the function returns.
"""

import time

import surge

app = surge.App("streaming")


@app.function(scaledown_window=5)
def generate(prompt: str, delay: float = 0.3):
    # Pretend to "think" for `delay` seconds per word.
    for i, word in enumerate(prompt.split()):
        time.sleep(delay)
        yield {"i": i, "word": word.upper()}


@app.local_entrypoint()
def main(prompt: str = "tokens arrive one at a time") -> None:
    start = time.monotonic()
    words = []
    for item in generate.remote_gen(prompt):
        words.append(item["word"])
        # flush so the line shows at once even when stdout is a pipe
        print(f"+{time.monotonic() - start:5.2f} s  item {item['i']}: {item['word']}", flush=True)
    print("streamed:", " ".join(words))
