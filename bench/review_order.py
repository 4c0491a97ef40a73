"""The review queue's order against lowest-confidence-first, on a finished job.

    .venv/bin/python -m signdigits.bench.review_order JOB [--reviews 10,25,50]

Every classified image of the job is a candidate (as at threshold 1.0). For the first N
of each order: how many distinct digits they cover (the folder's name, ``<digit>/...``,
when the job's paths have one; else the model's answer), and how many are near-duplicates
of one earlier in the order (db.review_order.NEAR). Uses SIGNDIGITS_DATABASE_URL.
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    from sqlalchemy import select

    from signdigits.config.settings import get_settings
    from signdigits.db.jobs import resolve_job
    from signdigits.db.models import Image, ImageStatus
    from signdigits.db.review_order import NEAR, Candidate, hand_shape, review_order
    from signdigits.db.session import session_factory

    parser = argparse.ArgumentParser(prog="python -m signdigits.bench.review_order",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("job")
    parser.add_argument("--reviews", default="10,25,50")
    args = parser.parse_args(argv)
    counts = sorted({int(n) for n in args.reviews.split(",") if n.strip()})
    with session_factory(get_settings().database_url)() as session:
        job = resolve_job(session, ref=args.job)
        rows = session.execute(select(Image.id, Image.confidence, Image.hand, Image.path,
                                      Image.digit)
                               .where(Image.job_id == job.id, Image.status == ImageStatus.DONE)
                               ).all()
    shapes = {r.id: hand_shape(r.hand) for r in rows}
    label = {r.id: r.path.split("/")[0] if "/" in r.path else str(r.digit) for r in rows}
    candidates = [Candidate(r.id, r.confidence or 0.0, shapes[r.id]) for r in rows]
    orders = {"lowest confidence first": [c.id for c in sorted(
                  candidates, key=lambda c: (c.confidence, c.id))],
              "review_order": review_order(candidates)}

    def duplicates(ids: list[int]) -> int:
        import numpy as np

        seen: list = []
        found = 0
        for i in ids:
            shape = shapes[i]
            if shape is None:
                continue
            point = np.asarray(shape)
            if seen and min(float(np.linalg.norm(point - s)) for s in seen) < NEAR:
                found += 1
            seen.append(point)
        return found

    print(f"job {job.id[:8]}: {len(rows)} classified images")
    print("| order | " + " | ".join(f"first {n}: digits, near-duplicates" for n in counts) + " |")
    print("|---|" + "---|" * len(counts))
    for name, ids in orders.items():
        cells = [f"{len({label[i] for i in ids[:n]})}, {duplicates(ids[:n])}" for n in counts]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
