"""Multiply-adds per image and model-only images/s of each architecture's served graph.

``python -m signdigits.training.speed [--threads 1] [--rounds 3]``: the graphs are built with random
weights (speed does not depend on them), traced once, then timed on batches of 64, the
architectures alternating so that a busy machine slows each alike.
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads (0: all)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=2048)
    args = parser.parse_args()

    from signdigits.serving.classifier import configure_tensorflow

    configure_tensorflow(args.threads)
    from signdigits.training.fit import images_per_second
    from signdigits.training.model import (
        ARCHITECTURES,
        build_inference_model,
        build_model,
        multiply_adds,
    )

    served = {a: build_inference_model([build_model(a)], a, 0.6) for a in ARCHITECTURES}
    rates: dict[str, list[float]] = {a: [] for a in ARCHITECTURES}
    for _ in range(args.rounds):
        for name, model in served.items():
            rates[name].append(images_per_second(model, images=args.images))
    for name, model in served.items():
        print(
            f"{name}: {multiply_adds(model) / 1e6:.1f} M multiply-adds per image (two views), "
            f"{args.threads} thread(s), batches of 64: images/s {rates[name]} "
            f"(best {max(rates[name]):.0f})"
        )


if __name__ == "__main__":
    main()
