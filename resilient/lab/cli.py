"""The ``resilient`` command: ``resilient herd`` replays thundering herds under each strategy."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence

from .metrics import PEAK_MEASURE, ScenarioResult
from .report import PlotUnavailable, format_scenario, plot, to_json
from .vloop import quiet_logs

__all__ = ["SCENARIOS", "main", "run_scenarios"]

SCENARIOS = (
    "expiry",
    "retry-storm",
    "backoff",
    "token",
    "collapse",
    "cron",
    "partition",
    "restart",
    "write-spike",
)


def _runner(name: str, *, seed: int, full: bool) -> Callable[[], ScenarioResult]:
    if name == "expiry":
        from .scenario_expiry import run_expiry

        return lambda: run_expiry(seed=seed)
    if name == "retry-storm":
        from .scenario_retry_storm import run_retry_storm

        return lambda: run_retry_storm(seed=seed)
    if name == "write-spike":
        from .scenario_write_spike import DEFAULT, FULL, run_write_spike

        return lambda: run_write_spike(seed=seed, **(FULL if full else DEFAULT))
    if name == "backoff":
        from .scenario_backoff import DEFAULT_CLIENTS, DEFAULT_RUNS, FULL_CLIENTS, FULL_RUNS, run_backoff

        if full:

            def tell(line: str) -> None:
                print(line, file=sys.stderr, flush=True)

            return lambda: run_backoff(clients=FULL_CLIENTS, runs=FULL_RUNS, seed=seed, progress=tell)
        return lambda: run_backoff(clients=DEFAULT_CLIENTS, runs=DEFAULT_RUNS, seed=seed)
    if name == "restart":
        from .scenario_restart import run_restart

        return lambda: run_restart(seed=seed)
    if name == "collapse":
        from .scenario_collapse import run_collapse

        return run_collapse
    if name == "cron":
        from .scenario_cron import run_cron

        return lambda: run_cron(seed=seed)
    if name == "partition":
        from .scenario_partition import run_partition

        return lambda: run_partition(seed=seed)
    from .scenario_token import run_token

    return lambda: run_token(seed=seed)


def run_scenarios(
    names: Sequence[str], *, seed: int = 1, full: bool = False, echo: Callable[[str], None] | None = None
) -> list[ScenarioResult]:
    """Run the named scenarios in simulated time; ``echo`` receives each table as it is ready."""
    results = []
    with quiet_logs():
        for name in names:
            result = _runner(name, seed=seed, full=full)()
            results.append(result)
            if echo is not None:
                echo(format_scenario(result) + "\n")
    return results


def _herd_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    herd = sub.add_parser(
        "herd",
        help="replay thundering herds under each strategy",
        description="Replay thundering herds (cache expiry, retry storms, backoff contention, token expiry) "
        "under each strategy, with the library's real policies, in simulated time.",
    )
    herd.add_argument(
        "--scenario", action="append", choices=SCENARIOS, help="run only this scenario (repeatable; default: all)"
    )
    herd.add_argument(
        "--seed", type=int, default=1, help="random seed (runs are deterministic per seed; default: %(default)s)"
    )
    herd.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    herd.add_argument("--plot", metavar="FILE.png", help="draw origin load over time per strategy (needs matplotlib)")
    herd.add_argument(
        "--full",
        action="store_true",
        help="backoff: the published sweep, N=10..190 x 100 runs (about 10 minutes);"
        " write-spike: 50,000 writes to a database of 500/s (the default is a tenth of both)",
    )
    real = herd.add_argument_group("real mode (a loopback HTTP origin, real time)")
    real.add_argument("--real", action="store_true", help="run the expiry herd against a real loopback HTTP origin")
    real.add_argument("--processes", type=int, default=None, help="worker processes (fleet mode; default: 1)")
    real.add_argument("--redis", metavar="URL", help="shared Redis for the fleet's cache (redis://127.0.0.1:6379/0)")
    real.add_argument("--duration", type=float, default=6.0, help="seconds of load in real mode (default: %(default)s)")
    real.add_argument(
        "--rate", type=float, default=400.0, help="requests per second in real mode, whole fleet (default: %(default)s)"
    )
    return herd


def _usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the combination of options, if anything (argparse checks each alone)."""
    if not args.real:
        pairs = (("--redis", args.redis), ("--processes", args.processes))
        given = [flag for flag, value in pairs if value is not None]
        if given:
            verb = "needs" if len(given) == 1 else "need"
            return f"{' and '.join(given)} {verb} --real (simulated runs have no processes or Redis)"
        return None
    if args.scenario and set(args.scenario) != {"expiry"}:
        other = sorted(set(args.scenario) - {"expiry"})
        return f"--real runs the expiry herd only; --scenario {' '.join(other)} is simulated (drop --real)"
    return None


def _check_real(redis_url: str | None) -> str | None:
    """Why --real cannot run here (redis-py missing, the Redis URL dead), or None."""
    if redis_url is None:
        return None
    try:
        import redis
    except ImportError:
        return "--real --redis needs redis-py: pip install 'resilient[redis]'"
    client = redis.Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        client.ping()
    except (redis.exceptions.RedisError, OSError, ValueError) as exc:
        return f"no Redis answers at {redis_url} ({type(exc).__name__}: {exc})"
    finally:
        client.close()
    return None


def herd(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    problem = _usage_error(args)
    if problem is not None:
        parser.error(problem)  # exits 2 with the usage line
    started = time.perf_counter()
    if args.real:
        from .real import run_real

        unable = _check_real(args.redis)
        if unable is not None:
            print(f"resilient herd: {unable}", file=sys.stderr)
            return 2
        try:
            results = [
                run_real(
                    processes=1 if args.processes is None else args.processes,
                    redis_url=args.redis,
                    duration=args.duration,
                    rate=args.rate,
                    progress=None if args.json else sys.stderr,
                )
            ]
        except ValueError as exc:
            print(f"resilient herd: {exc}", file=sys.stderr)
            return 2
        if not args.json:
            print(format_scenario(results[0]) + "\n")
    else:
        names = args.scenario or list(SCENARIOS)
        echo = None if args.json else print
        results = run_scenarios(names, seed=args.seed, full=args.full, echo=echo)
    if args.json:
        print(to_json(results))
    if args.plot:
        try:
            plot(results, args.plot)
        except PlotUnavailable as exc:
            print(f"resilient herd: {exc}", file=sys.stderr)
            return 1
        if not args.json:
            print(f"plot written to {args.plot}")
    if not args.json:
        mode = "a real-time run" if args.real else f"a simulated run, --seed {args.seed}"
        print(f"peak calls/s and the plots' y axis: {PEAK_MEASURE}, the busiest one-second window")
        print(f"done in {time.perf_counter() - started:.1f} s of wall time ({mode})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The ``resilient`` command; a closed stdout (``resilient herd | head``) ends it quietly."""
    from .. import __version__

    parser = argparse.ArgumentParser(prog="resilient", description="resilient: herd-proof outbound calls.")
    parser.add_argument("--version", action="version", version=f"resilient {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    herd_parser = _herd_parser(sub)
    args = parser.parse_args(argv)
    try:
        if args.command == "herd":
            return herd(args, herd_parser)
        return 2  # pragma: no cover - argparse rejects unknown commands
    except BrokenPipeError:
        # The reader went away (| head): stop writing; point stdout at devnull so the
        # interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
