"""``python -m scoring serve MODEL_DIR --port P [--host H] [--workers N] [--compiled DIR]``,
``python -m scoring build-context MODEL_DIR DEST [--base-image IMAGE] [--reference FILE] [--no-compile]``,
``python -m scoring compile MODEL_DIR OUT_DIR [--reference FILE]``
and ``python -m scoring route CONFIG --port P [--host H]`` (a deployment's stable endpoint: router.py)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .config import Settings, SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scoring", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve an MLflow model directory")
    serve.add_argument("model_dir")
    serve.add_argument("--host", default=None, help="bind address (SCORING_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="TCP port (SCORING_PORT, default 8080)")
    serve.add_argument("--workers", type=int, default=None, help="worker processes (SCORING_WORKERS, default 1)")
    serve.add_argument("--compiled", default=None, help="compiled model directory (SCORING_COMPILED_DIR)")
    worker = sub.add_parser("_worker", help=argparse.SUPPRESS)
    worker.add_argument("model_dir")
    ctx = sub.add_parser("build-context", help="assemble an image build context and print its digest")
    ctx.add_argument("model_dir")
    ctx.add_argument("dest_dir")
    ctx.add_argument("--base-image", default=None)
    ctx.add_argument("--reference", default=None, help="reference data (Parquet/CSV) to verify the compiled model on")
    ctx.add_argument("--no-compile", action="store_true", help="serve the original model; do not compile it")
    comp = sub.add_parser("compile", help="compile and verify a model directory into OUT_DIR (prints the decision)")
    comp.add_argument("model_dir")
    comp.add_argument("out_dir")
    comp.add_argument("--reference", default=None)
    comp.add_argument("--sample-rows", type=int, default=1000)
    route = sub.add_parser("route", help="the stable endpoint: route requests to revisions by weight (router.py)")
    route.add_argument("config", help="JSON file: backends, weights, mirror (reloaded on SIGHUP or change)")
    route.add_argument("--host", default=None, help="bind address (SCORING_HOST, default 127.0.0.1)")
    route.add_argument("--port", type=int, default=None, help="TCP port (SCORING_PORT, default 8080)")
    route.add_argument("--timeout", type=float, default=120.0, help="seconds a backend may take to answer")
    route.add_argument("--mirror-backlog", type=int, default=64, help="mirrored requests in flight at most")
    args = parser.parse_args(argv)

    if args.command == "compile":
        from .compiler import compile_model

        logging.basicConfig(level="WARNING", stream=sys.stderr)
        decision = compile_model(args.model_dir, args.out_dir, reference=args.reference, sample_rows=args.sample_rows)
        print(json.dumps(decision, sort_keys=True))
        return 0

    if args.command == "build-context":
        from .build_context import DEFAULT_BASE_IMAGE, assemble_build_context

        result = assemble_build_context(
            args.model_dir,
            args.dest_dir,
            base_image=args.base_image or DEFAULT_BASE_IMAGE,
            compile=not args.no_compile,
            reference_data=args.reference,
        )
        print(json.dumps({"path": str(result.path), "digest": result.digest, "build_args": result.build_args}))
        return 0

    try:
        settings = Settings.from_env()
        if args.command == "route":
            settings = settings.replace(host=args.host, port=args.port)
        if args.command == "serve":
            settings = settings.replace(
                host=args.host, port=args.port, workers=args.workers, compiled_dir=args.compiled
            )
    except SettingsError as exc:
        print(f"scoring: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
    )
    if args.command == "route":
        from .router import run_router

        return run_router(args.config, settings, timeout_s=args.timeout, mirror_backlog=args.mirror_backlog)
    if args.command == "_worker":
        from .app import run_worker

        return run_worker(args.model_dir, settings, reuse_port=True)
    if settings.workers > 1:
        from .supervisor import supervise

        return supervise(args.model_dir, settings)
    from .app import run_worker

    return run_worker(args.model_dir, settings)


if __name__ == "__main__":
    sys.exit(main())
