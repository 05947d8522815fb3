"""Ids the collector gives events that arrive without a `messageId`."""

from __future__ import annotations

import os
import uuid

from tracking.ids import new_id


def test_an_id_is_a_random_version_4_uuid_in_its_usual_text_form() -> None:
    for _ in range(1000):
        text = new_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_ids_do_not_repeat() -> None:
    count = 50_000  # several blocks of randomness
    assert len({new_id() for _ in range(count)}) == count


def test_a_forked_process_does_not_hand_out_its_parents_next_ids() -> None:
    new_id()  # a block of randomness is held, with ids left in it
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(write, " ".join(new_id() for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    childs = set(os.read(read, 4096).decode().split())
    os.close(read)
    assert len(childs) == 3
    assert childs.isdisjoint(new_id() for _ in range(3))
