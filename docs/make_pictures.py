"""Regenerate the README's pictures: ``python docs/make_pictures.py`` (needs the ``plot`` extra).

``docs/cluster.png`` is ``render_mode="rgb_array"`` of black_swan_az_failure, seed 0, two steps
after the zone failed, with the triage oracle acting; ``tests/test_readme.py`` checks it is
still what the env draws.
"""

from __future__ import annotations

import pathlib

import numpy as np

DOCS = pathlib.Path(__file__).resolve().parent
CLUSTER_PICTURE = DOCS / "cluster.png"


def cluster_picture() -> np.ndarray:
    """The README's example picture, drawn by the env."""
    import gymnasium as gym

    import dime_gym  # noqa: F401 - registers DIME-v0

    env = gym.make("DIME-v0", task="black_swan_az_failure", render_mode="rgb_array")
    obs, info = env.reset(seed=0)
    fault_step = env.unwrapped.episode.facts["fault_step"]
    for _ in range(fault_step + 2):
        obs, _, _, _, info = env.step(info["oracle"]["action"])
    return env.render()


def main() -> None:
    import matplotlib.pyplot as plt

    plt.imsave(CLUSTER_PICTURE, cluster_picture())
    print(f"wrote {CLUSTER_PICTURE}")


if __name__ == "__main__":
    main()
