import pytest

from secure_postfix.core.smtp import SmtpProtocolError, take_reply


def test_multiline_reply():
    reply, rest = take_reply(b"250-mx.example\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n220 next")
    assert reply.code == 250 and reply.lines == ["mx.example", "SIZE 10240000", "8BITMIME"]
    assert rest == b"220 next"


def test_incomplete_reply_waits():
    assert take_reply(b"250-mx\r\n250 SIZE") == (None, b"250-mx\r\n250 SIZE")


def test_garbage_is_an_error():
    with pytest.raises(SmtpProtocolError):
        take_reply(b"HTTP/1.1 400 Bad\r\n")
