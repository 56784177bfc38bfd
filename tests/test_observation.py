"""The observation layout is stated once (``core.observe``): the space, the Dict views and the
prompts' key order all derive from it."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from dime_gym.core.observe import (
    FLAG_FIELDS,
    N_FLAG_OBS,
    N_NODE_OBS,
    N_SCALAR_OBS,
    NODE_FIELDS,
    SCALAR_FIELDS,
    STEP_FIELD,
)
from dime_gym.core.state import N_NODES
from dime_gym.observation import (
    FIELD_BOUNDS,
    OBSERVATION_KEYS,
    allocate_single_buffers,
    observation_from_buffers,
    observation_space,
)


def test_observation__space_keys_and_shapes_follow_the_layout():
    space = observation_space()
    assert sorted(space.spaces) == sorted(OBSERVATION_KEYS)  # (spaces.Dict sorts its keys)
    assert OBSERVATION_KEYS == (*NODE_FIELDS, *FLAG_FIELDS, *SCALAR_FIELDS, STEP_FIELD)
    assert (N_NODE_OBS, N_FLAG_OBS, N_SCALAR_OBS) == (len(NODE_FIELDS), len(FLAG_FIELDS), len(SCALAR_FIELDS))
    for key in NODE_FIELDS:
        assert space[key].shape == (N_NODES,) and space[key].dtype == np.float32
    for key in FLAG_FIELDS:
        assert isinstance(space[key], spaces.MultiBinary) and space[key].shape == (N_NODES,)
    for key in (*SCALAR_FIELDS, STEP_FIELD):
        assert space[key].shape == (1,)
    # every non-flag field has bounds, and the space uses them
    assert set(FIELD_BOUNDS) == set(OBSERVATION_KEYS) - set(FLAG_FIELDS)
    for key, (low, high) in FIELD_BOUNDS.items():
        assert np.all(space[key].low == low) and np.all(space[key].high == high), key


def test_observation__views_name_each_buffer_row_by_the_layout():
    node_obs, flag_obs, scalar_obs, step_obs = allocate_single_buffers()
    node_obs[:] = np.arange(N_NODE_OBS)[:, None]
    flag_obs[:] = np.arange(N_FLAG_OBS)[:, None]
    scalar_obs[:] = np.arange(N_SCALAR_OBS)[:, None]
    step_obs[:] = 7
    obs = observation_from_buffers(node_obs, flag_obs, scalar_obs, step_obs)
    assert tuple(obs) == OBSERVATION_KEYS
    for rows, names in ((node_obs, NODE_FIELDS), (flag_obs, FLAG_FIELDS), (scalar_obs, SCALAR_FIELDS)):
        for row, name in enumerate(names):
            assert np.all(obs[name] == row) and np.shares_memory(obs[name], rows), name
    assert obs[STEP_FIELD][0] == 7
