"""InfluxDB line protocol and the default writer (influxdb-client's synchronous v2 write API)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping

from .sink_config import SinkConfig

if TYPE_CHECKING:
    from influxdb_client.client.influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import WriteApi

EMPTY = "(empty)"

# ------------------------------------------------------------------------------ line protocol
_MEAS_ESC = str.maketrans({",": "\\,", " ": "\\ ", "\n": " "})
_TAG_ESC = str.maketrans({"\\": "\\\\", ",": "\\,", "=": "\\=", " ": "\\ ", "\n": " "})
_STR_ESC = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": " "})


def escape_tag(value: Any) -> str:
    """A tag key or value escaped for line protocol (empty values become ``(empty)``)."""
    s = str(value) if value is not None else ""
    return s.translate(_TAG_ESC) if s else EMPTY


def _field_value(v: Any) -> str | None:
    if isinstance(v, bool):
        return "1i" if v else "0i"
    if isinstance(v, int):
        return f"{v}i"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else None     # line protocol has no NaN/Inf
    if v is None:
        return None
    return '"' + str(v).translate(_STR_ESC) + '"'


def format_line(measurement: str, tags: Mapping[str, Any], fields: Mapping[str, Any], ts_ms: int) -> str | None:
    """One line of InfluxDB line protocol (tags sorted; None and non-finite fields left out);
    None when no field is left."""
    parts = [f"{k.translate(_TAG_ESC)}={v}" for k, v in
             ((k, _field_value(v)) for k, v in fields.items()) if v is not None]
    if not parts:
        return None
    tag_part = "".join(f",{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()))
    return f"{measurement.translate(_MEAS_ESC)}{tag_part} {','.join(parts)} {int(ts_ms)}"


def _ms(ts_s: float) -> int:
    return int(round(ts_s * 1000))


# ------------------------------------------------------------------------------------ writer
class SinkWriteError(Exception):
    """A write that failed; ``permanent`` when retrying the same points cannot succeed (HTTP 400:
    InfluxDB rejected the points themselves)."""

    def __init__(self, message: str, *, status: int | None = None, permanent: bool = False):
        super().__init__(message)
        self.status = status
        self.permanent = permanent


def _describe(exc: BaseException) -> str:
    """A short reason for an exception of the HTTP stack."""
    name = type(exc).__name__
    text = str(exc)
    if name == "NewConnectionError" or "Failed to establish a new connection" in text:
        return "cannot connect: " + text.split("Failed to establish a new connection: ", 1)[-1]
    if "timed out" in text.lower() or "Timeout" in name:
        return "no answer (timed out)"
    if name in ("ProtocolError", "RemoteDisconnected", "ConnectionResetError") or "Connection aborted" in text:
        return "connection lost: " + text[:200]
    return f"{name}: {text[:300]}"


class InfluxWriter:
    """The default writer: ``writer(lines)`` through influxdb-client's synchronous v2 write API
    (gzip, ms precision, no urllib3 retries: the sink retries). Raises :class:`SinkWriteError`."""

    def __init__(self, config: SinkConfig):
        self.config = config
        self._client: InfluxDBClient | None = None
        self._api: WriteApi | None = None
        self._connect()      # imports influxdb-client now (~0.3 s of CPU), not in the middle of a run

    def _connect(self) -> WriteApi:
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        c = self.config
        # influxdb-client annotates ``token: str = None`` (implicit Optional); None means no token
        self._client = InfluxDBClient(url=c.url, token=c.token or None,  # type: ignore[arg-type]
                                      org=c.org, enable_gzip=True, timeout=int(c.timeout_s * 1000), retries=False)
        self._api = api = self._client.write_api(write_options=SYNCHRONOUS)
        return api

    def __call__(self, lines: list[str]) -> None:
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException

        api = self._api
        if api is None:
            api = self._connect()
        try:
            # influxdb-client annotates write_precision as WritePrecision; its values are str constants
            api.write(bucket=self.config.bucket, org=self.config.org, record=lines,
                      write_precision=WritePrecision.MS)  # type: ignore[arg-type]
        except ApiException as e:
            body = (e.body.decode("utf-8", "replace") if isinstance(e.body, bytes) else str(e.body or ""))
            raise SinkWriteError(f"HTTP {e.status} {e.reason or ''}: {body.strip()[:300]}".strip(),
                                 status=e.status, permanent=e.status in (400, 422)) from None
        except Exception as e:   # urllib3 / socket errors: InfluxDB unreachable, timed out, reset
            raise SinkWriteError(_describe(e)) from None

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()  # type: ignore[no-untyped-call]  # influxdb-client: unannotated
            except Exception:
                pass
            self._client = self._api = None
