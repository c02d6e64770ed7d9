"""Progress reporting that reads well both in SLURM logs and on an interactive terminal.

Plain log lines (``step 120/1000 | loss 0.4312 | 3.1 it/s | ETA 4m49s``) go to the logger at most
every ``every_s`` seconds and at the end; on a TTY a one-line bar is redrawn on stderr in between.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import traceback
from pathlib import Path

from .errors import NoBarriersError

log = logging.getLogger("nobarriers")


def format_duration(seconds: float) -> str:
    """``3725`` -> ``'1h02m05s'``; short durations stay short."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class Progress:
    """Count ``total`` units of work labelled ``desc``; call :meth:`update` after each unit."""

    def __init__(
        self,
        total: int,
        desc: str,
        logger: logging.Logger | None = None,
        every_s: float = 10.0,
        start: int = 0,
        stream=None,
    ):
        self.total = max(int(total), 1)
        self.desc = desc
        self.logger = logger or log
        self.every_s = every_s
        self.count = start
        self._start_count = start
        self._t0 = time.perf_counter()
        self._last_log = self._t0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def _line(self, metrics: dict) -> str:
        elapsed = time.perf_counter() - self._t0
        done = self.count - self._start_count
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.count) / rate if rate > 0 else float("nan")
        parts = [f"{self.desc} {self.count}/{self.total}"]
        parts += [
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
        ]
        parts.append(f"{rate:.3g} it/s" if rate >= 1 or rate == 0 else f"{1 / rate:.3g} s/it")
        parts.append(f"ETA {format_duration(eta)}" if eta == eta else "ETA ?")
        return " | ".join(parts)

    def update(self, n: int = 1, **metrics) -> None:
        self.count += n
        now = time.perf_counter()
        finished = self.count >= self.total
        if finished or now - self._last_log >= self.every_s:
            if self.tty:
                self.stream.write("\r\033[K")
            self.logger.info(self._line(metrics))
            self._last_log = now
        elif self.tty:
            width = 30
            filled = int(width * self.count / self.total)
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r[{bar}] {self._line(metrics)}")
            self.stream.flush()


def setup_logging(log_path: str | None = None, level: int = logging.INFO) -> logging.Logger:
    """Log ``nobarriers`` messages with timestamps to stderr and, if given, to ``log_path``."""
    logger = logging.getLogger("nobarriers")
    logger.setLevel(level)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="a"))
    logger.handlers.clear()
    for handler in handlers:
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    logger.propagate = False
    return logger


def error_line(exc: BaseException) -> str:
    """One line for a failed job: this project's errors speak for themselves, anything else
    carries its type."""
    text = " ".join(str(exc).split()) or "(no message)"
    return text if isinstance(exc, NoBarriersError) else f"{type(exc).__name__}: {text}"


#: what a rerun of the running job would resume from, kept current by the jobs that save
#: resume states (training after each epoch, AutoNEB after each cycle); said on SIGTERM
_RESUME = {"point": "nothing finished yet: a rerun starts the job from the beginning"}


def note_resume_point(text: str) -> None:
    """Record what a rerun would resume from (after a resume state was saved)."""
    _RESUME["point"] = text


class Terminated(BaseException):  # noqa: N818 - like KeyboardInterrupt, not an Exception
    """SIGTERM arrived (SLURM's time limit, scancel): raised where the job is, so that its log
    says where it stopped and a finished output is kept."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _error_first(log_path: str, line: str) -> None:
    """Rewrite the job's log with the error line first: where users of a cluster look."""
    from .atomic import atomic_path

    text = Path(log_path).read_text() if Path(log_path).exists() else ""
    with atomic_path(log_path) as tmp:
        tmp.write_text(f"{line}\n{text}")


@contextlib.contextmanager
def job_log(log_path: str | None, job: str = "job", outputs=()):
    """Log to the job's ``log:`` file (and stderr) for its whole run.

    If the job fails, its log starts with one ``ERROR <job> failed: ...`` line saying what went
    wrong, and the traceback follows the job's own lines; the process exits with status 1
    (Snakemake then marks the job failed and shows this log). On a cluster the job log is where
    users look, not the scheduler's stderr. On SIGTERM (SLURM's time limit, ``scancel``) the log
    says what a rerun resumes from (:func:`note_resume_point`) and the job exits with 143; if
    every one of its ``outputs`` is already written, the job counts as finished (status 0), so
    the output is not thrown away."""
    import signal

    logger = setup_logging(log_path)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield logger
    except Terminated:
        if outputs and all(Path(o).exists() for o in outputs):
            logger.warning("%s: SIGTERM after its output was written: the output is kept", job)
            raise SystemExit(0) from None
        line = f"ERROR {job} stopped by SIGTERM (time limit or scancel): {_RESUME['point']}"
        _finish_failed(logger, log_path, line, None)
        raise SystemExit(143) from None
    except Exception as exc:  # noqa: BLE001 - every failure must reach the job log
        _finish_failed(logger, log_path, f"ERROR {job} failed: {error_line(exc)}", exc)
        raise SystemExit(1) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _finish_failed(logger, log_path, line: str, exc) -> None:
    if exc is not None:
        logger.error("traceback of the failure:\n%s", traceback.format_exc().rstrip())
    print(line, file=sys.stderr)
    for handler in list(logger.handlers):
        handler.flush()
        if isinstance(handler, logging.FileHandler):
            handler.close()
            logger.removeHandler(handler)
    if log_path:
        _error_first(log_path, f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}")
