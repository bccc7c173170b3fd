"""The sans-IO stream model: what TCP guarantees, and nothing more."""

from __future__ import annotations

import pytest

from harness.net.network import Network, Stream


def test_bytes_arrive_in_order_in_any_split():
    s = Stream("c1>s")
    s.send(b"hello world", now=0.0)
    assert s.arrive(3) == (3, False, False)
    assert s.read(100) == b"hel"
    s.arrive(None)
    assert s.read(100) == b"lo world"


def test_fin_arrives_only_after_every_byte_sent_before_it():
    s = Stream("c1>s")
    s.send(b"abc", now=0.0)
    s.send_fin(now=0.0)
    assert s.arrive(2) == (2, False, False)
    assert s.arrive(None) == (1, True, False)
    assert s.read(10) == b"abc"
    assert s.read(10) == b""  # End of stream, as recv() reports it.


def test_reading_an_empty_stream_would_block():
    with pytest.raises(BlockingIOError):
        Stream("c1>s").read(10)


def test_a_reset_discards_unread_bytes_and_fails_the_next_read():
    s = Stream("c1>s")
    s.send(b"abc", now=0.0)
    s.arrive(None)
    s.send_rst(now=0.0)
    s.arrive(None)
    assert s.rx == b""
    with pytest.raises(ConnectionResetError):
        s.read(10)


def test_the_window_pushes_back_on_a_writer_whose_reader_is_slow():
    s = Stream("s>c1", window=10)
    assert s.send(b"x" * 25, now=0.0) == 10
    assert s.capacity() == 0
    s.arrive(None)
    assert s.capacity() == 0  # Arrived but unread bytes still count.
    s.read(4)
    assert s.send(b"y" * 25, now=0.0) == 4


def test_sending_after_shutdown_is_a_broken_pipe():
    s = Stream("c1>s")
    s.send_fin(now=0.0)
    with pytest.raises(BrokenPipeError):
        s.send(b"late", now=0.0)


def test_arrival_options_count_every_split_plus_all_and_hold():
    s = Stream("c1>s")
    s.send_fin(now=0.0)
    assert s.arrival_options() == 2  # all, hold
    s2 = Stream("c1>s")
    s2.send(b"abcd", now=0.0)
    assert s2.arrival_options() == 5  # all, hold, 1, 2 or 3 bytes


def test_connecting_where_nothing_listens_is_refused_with_the_address():
    with pytest.raises(ConnectionRefusedError, match=r"127\.0\.0\.1:9"):
        Network().connect(("127.0.0.1", 9))


def test_two_listeners_cannot_share_an_address():
    net = Network()
    net.listen(("127.0.0.1", 8000))
    with pytest.raises(OSError, match="already in use"):
        net.listen(("127.0.0.1", 8000))


def test_a_window_must_be_positive():
    with pytest.raises(ValueError, match="window must be positive, got 0"):
        Stream("x", window=0)
