"""Bad input to the metrics endpoint: any address text parses or raises ValueError; any request head gets
one HTTP status line (200/400/404/405), never an exception (hypothesis)."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.registry import CollectorRegistry

from wgpy.io.metrics_http import MetricsServer, parse_addr


@given(st.text(max_size=60))
def test_parse_addr_parses_or_raises_value_error(text: str) -> None:
    try:
        host, port = parse_addr(text)
    except ValueError as exc:
        assert "\n" not in str(exc)
    else:
        assert 0 <= port <= 65535 and (host is None or host)


REQUEST = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda m, p, v, h: m + b" " + p + b" " + v + b"\r\n" + h + b"\r\n\r\n",
              st.sampled_from([b"GET", b"HEAD", b"POST", b"", b"G\x00T"]),
              st.sampled_from([b"/metrics", b"/", b"/metrics?a=b", b"", b"/m" * 50]),
              st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2", b""]),
              st.binary(max_size=100)),
)


@given(REQUEST)
def test_any_request_head_gets_a_status_not_an_exception(data: bytes) -> None:
    async def answer() -> str:
        server = MetricsServer(CollectorRegistry(auto_describe=False), "127.0.0.1:0")
        reader = asyncio.StreamReader(limit=8192)
        reader.feed_data(data)
        reader.feed_eof()
        status, body, _ = await server._answer(reader)
        assert isinstance(body, bytes)
        return status

    status = asyncio.run(answer())
    assert status.split(" ")[0] in {"200", "400", "404", "405"}
    if not data.endswith(b"\r\n\r\n") and b"\r\n\r\n" not in data:
        assert status.startswith("400")
