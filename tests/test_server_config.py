"""Pure pieces of the runner: binds, config checks, reported URLs, the lazy exports."""

from __future__ import annotations

import pytest

import anywire
from anywire.server import ServerConfig, ServerInfo
from anywire.server._config import TCPBind, UnixBind, parse_bind
from anywire.server._logging import DateHeader, format_address


@pytest.mark.parametrize(
    ("text", "bind"),
    [
        ("127.0.0.1:8000", TCPBind("127.0.0.1", 8000)),
        ("[::1]:0", TCPBind("::1", 0)),
        ("localhost:80", TCPBind("localhost", 80)),
        (":8080", TCPBind(None, 8080)),
        ("unix:/tmp/app.sock", UnixBind("/tmp/app.sock")),
    ],
)
def test_parse_bind(text: str, bind: TCPBind | UnixBind) -> None:
    assert parse_bind(text) == bind


@pytest.mark.parametrize("text", ["127.0.0.1", "host:port", ""])
def test_bad_binds_are_refused_early(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        ServerConfig(binds=[text])


def test_listen_on() -> None:
    assert ServerConfig(host="0.0.0.0", port=1).listen_on() == [TCPBind("0.0.0.0", 1)]
    assert ServerConfig(uds="/s").listen_on() == [UnixBind("/s")]
    both = ServerConfig(binds=["[::1]:2"], uds="/s").listen_on()
    assert both == [TCPBind("::1", 2), UnixBind("/s")]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"graceful_shutdown": -1}, "graceful_shutdown"),
        ({"lifespan": "sometimes"}, "lifespan"),
        ({"keyfile": "key.pem"}, "keyfile needs certfile"),
        ({"max_connections": 0}, "max_connections"),
    ],
)
def test_config_checks(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServerConfig(**options)  # type: ignore[arg-type]


def test_config_derives_limits_and_websocket_settings() -> None:
    config = ServerConfig(max_body_size=None, header_timeout=1, ws_ping_interval=None)
    assert config.http_limits().max_body_size is None
    assert config.http_limits().header_timeout == 1
    assert config.websocket_settings().options.ping_interval is None
    assert config.tls() is None


def test_server_info_urls() -> None:
    info = ServerInfo((("127.0.0.1", 1), ("::1", 2)), ("/tmp/s",), tls=True)
    assert info.port == 1
    assert info.urls == ("https://127.0.0.1:1", "https://[::1]:2", "unix:/tmp/s")
    with pytest.raises(LookupError, match="Unix sockets only"):
        ServerInfo((), ("/tmp/s",)).port  # noqa: B018


def test_format_address_and_date_header() -> None:
    assert format_address(("::1", 5)) == "[::1]:5"
    assert format_address(None) == "-"
    date = DateHeader()
    assert date.value().endswith(b" GMT")


def test_top_level_exports() -> None:
    assert anywire.serve is anywire.server.serve
    assert anywire.serve_app is anywire.server.serve_app
    with pytest.raises(AttributeError):
        anywire.no_such_thing  # noqa: B018


def test_serve_refuses_to_run_outside_the_main_thread() -> None:
    import threading

    errors: list[BaseException] = []

    def run() -> None:
        try:
            anywire.serve(lambda *_: None, port=0)  # type: ignore[arg-type]
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=10)
    assert "main thread" in str(errors[0])
