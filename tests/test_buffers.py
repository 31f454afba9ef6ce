"""Recycled buffers: memory comes back only when nothing can see it any more."""

from __future__ import annotations

import threading

import numpy as np

from restore.buffers import ArrayPool


def test_a_buffer_is_reused_once_dropped() -> None:
    pool = ArrayPool()
    a = pool.take((4, 5))
    a[...] = 1.0
    address = a.__array_interface__["data"][0]
    del a
    b = pool.take((4, 5))
    assert b.__array_interface__["data"][0] == address
    assert pool.allocated == 1
    assert b.shape == (4, 5) and b.dtype == np.float32 and b.flags.c_contiguous


def test_a_view_keeps_the_memory_out_of_the_pool() -> None:
    pool = ArrayPool()
    a = pool.take((4, 5))
    a[...] = 7.0
    row = a[1]  # numpy would collapse this view's base to the pool's buffer
    del a
    assert pool.idle() == 0
    other = pool.take((4, 5))  # must be new memory: ``row`` still shows the old one
    other[...] = -1.0
    assert (row == 7.0).all()
    assert pool.allocated == 2
    del row
    assert pool.idle() == 1


def test_shapes_and_dtypes_do_not_mix() -> None:
    pool = ArrayPool()
    for shape, dtype in [((4, 5), np.float32), ((5, 4), np.float32), ((4, 5), np.uint8)]:
        x = pool.take(shape, dtype)
        assert x.shape == shape and x.dtype == dtype
        del x
    assert pool.allocated == 3 and pool.idle() == 3


def test_freed_in_another_thread_comes_back() -> None:
    pool = ArrayPool()
    box = [pool.take((8,))]
    worker = threading.Thread(target=box.clear)
    worker.start()
    worker.join()
    assert pool.idle() == 1


def test_idle_buffers_are_bounded() -> None:
    pool = ArrayPool(max_idle=2)
    held = [pool.take((3,)) for _ in range(5)]
    del held
    assert pool.idle() == 2
