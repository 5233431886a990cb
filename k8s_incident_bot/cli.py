"""The ``k8s-incident-bot`` command line: one console script, one subcommand per job.

Subcommands import what they need lazily so ``--help`` and ``check-config`` stay fast and work
without a reachable Redis or cluster. Configuration problems print every problem and exit 2,
never a traceback.

``demo`` and ``drill`` are the only commands that use ``sandbox/`` (the local control plane and the
Slack emulator). The container image and a wheel leave that package out, so it is imported inside
those two commands alone; without it they say where the demo runs instead of failing at import.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from incident.errors import ConfigError, IncidentBotError
from incident.settings import RunMode, Settings, load_settings

EXIT_CONFIG = 2
NO_SANDBOX = ("the demo runs from a source checkout (`make demo`): this installation has no `sandbox` package "
              "(the container image and the wheel leave the local test bed out)")

Handler = Callable[[argparse.Namespace], int]


def _settings(mode: RunMode) -> Settings:
    from incident.clusters import load_checked

    return load_checked(mode)


def _cmd_check_config(args: argparse.Namespace) -> int:
    settings = _settings(args.mode)
    print(f"Configuration OK for mode {args.mode!r}.")
    print(f"  Slack API:   {settings.slack_api_url}")
    print(f"  Redis:       {settings.redis_url}")
    kube = "in-cluster" if settings.kube_in_cluster else str(settings.kubeconfig or "~/.kube/config")
    print(f"  Kubernetes:  {kube} (cluster name {settings.cluster_name!r})")
    if settings.clusters_file is not None:
        from incident.clusters import load_registry

        registry = load_registry(settings)
        print(f"  Clusters:    {len(registry.clusters)} from {settings.clusters_file} (default {registry.default!r})")
        for cluster in registry.clusters:
            reach = "its agent" if cluster.is_agent else (
                "in-cluster" if cluster.in_cluster else f"{cluster.kubeconfig or kube} context {cluster.context or '(current)'}")
            print(f"    {cluster.name:<20} {cluster.mode:<8} {reach}")
    if settings.alertmanager_token is not None:
        rules = settings.intake_rules()
        print(f"  Alerts:      POST /alerts/alertmanager on; {len(rules.actions)} action rule(s), default "
              f"{rules.default_action}; cluster label {rules.cluster_label!r}; triage in "
              f"{settings.alert_triage_channel or '(no channel)'}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from bot.server import serve_http

    settings = _settings("http")
    serve_http(settings, host=args.host or settings.http_host, port=args.port or settings.http_port)
    return 0


def _cmd_socket(args: argparse.Namespace) -> int:
    from bot.server import serve_socket_mode

    serve_socket_mode(_settings("socket"))
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from workers.run import run_worker

    return run_worker(_settings("worker"), with_scheduler=not args.no_scheduler, burst=args.burst)


def _cmd_agent(args: argparse.Namespace) -> int:
    from workers.agent import run_agent

    return run_agent(_settings("worker"), args.cluster, burst=args.burst)


def _cmd_assess(args: argparse.Namespace) -> int:
    from k8s_incident_bot.assess import assess_command

    overrides: dict[str, object] = {}
    if args.kubeconfig:
        overrides["kubeconfig"] = args.kubeconfig
    settings = load_settings("worker", **overrides)
    return assess_command(settings, as_json=args.json)


def _cmd_postmortem(args: argparse.Namespace) -> int:
    from service.context import Context
    from service.postmortem import draft_postmortem

    context = Context.load("worker")
    _, markdown = draft_postmortem(context.settings, context.redis, args.incident)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(markdown + "\n")
        print(f"wrote {args.output}")
    else:
        print(markdown)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    try:
        from sandbox.demo import SCENARIOS, run_demo
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] != "sandbox":
            raise  # a dependency of the sandbox is missing: that is a real error, not "no sandbox here"
        print(f"error: {NO_SANDBOX}", file=sys.stderr)
        return 1
    scenario = getattr(args, "scenario", None)
    if scenario is not None and scenario not in SCENARIOS:
        print(f"error: unknown drill scenario {scenario!r}; choose one of: {', '.join(sorted(SCENARIOS))}",
              file=sys.stderr)
        return EXIT_CONFIG
    return run_demo(drill=scenario)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand and its help."""
    parser = argparse.ArgumentParser(
        prog="k8s-incident-bot",
        description="ChatOps incident bot for Kubernetes. Configuration comes from the environment "
        "or a .env file; run `k8s-incident-bot check-config` to see what is missing.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check-config", help="Validate the configuration and list every problem.")
    check.add_argument(
        "--mode",
        choices=["http", "socket", "worker", "any"],
        default="any",
        help="What the configuration is for (default: any, i.e. everything must be set).",
    )
    check.set_defaults(handler=_cmd_check_config)

    serve = sub.add_parser("serve", help="Run the Slack app over HTTP (Events API, slash commands, interactivity).")
    serve.add_argument("--host", help="Listen address (default: HTTP_HOST).")
    serve.add_argument("--port", type=int, help="Listen port (default: HTTP_PORT).")
    serve.set_defaults(handler=_cmd_serve)

    socket = sub.add_parser("socket", help="Run the Slack app over Socket Mode (needs SLACK_APP_TOKEN).")
    socket.set_defaults(handler=_cmd_socket)

    worker = sub.add_parser("worker", help="Run an RQ worker on the bot's queues (actions, assess, schedule, postmortem).")
    worker.add_argument("--no-scheduler", action="store_true", help="Do not run RQ's scheduler in this worker.")
    worker.add_argument("--burst", action="store_true", help="Exit when the queues are empty.")
    worker.set_defaults(handler=_cmd_worker)

    agent = sub.add_parser("agent", help="Run inside one cluster: serve only its queues (assessments, actions), "
                                         "outbound to Redis only, no Slack token.")
    agent.add_argument("--cluster", required=True, help="The cluster this agent serves (its name in CLUSTERS_FILE).")
    agent.add_argument("--burst", action="store_true", help="Exit when the cluster's queues are empty.")
    agent.set_defaults(handler=_cmd_agent)

    assess = sub.add_parser("assess", help="Run the runbook's cluster assessment now and print the verdict.")
    assess.add_argument("--json", action="store_true", help="Print the full JSON snapshot instead of a table.")
    assess.add_argument("--kubeconfig", help="kubeconfig to use (default: KUBECONFIG setting).")
    assess.set_defaults(handler=_cmd_assess)

    postmortem = sub.add_parser("postmortem", help="Print (or write) the post-mortem draft of an incident.")
    postmortem.add_argument("incident", help="Incident id, e.g. 20261123-001 (`/k8s incident status` shows it).")
    postmortem.add_argument("-o", "--output", help="Write the Markdown to this file instead of printing it.")
    postmortem.set_defaults(handler=_cmd_postmortem)

    demo = sub.add_parser("demo", help="Run everything locally (Redis, two control planes: prod-eu central and prod-us "
                                       "with its agent, Slack emulator, worker, bot) and print one URL; "
                                       "DEMO_CLUSTERS=1 for one cluster.")
    demo.set_defaults(handler=_cmd_demo)

    drill = sub.add_parser("drill", help="Like demo, then break the cluster and open a drill incident; the post-mortem scores it.")
    # Checked by the command itself: listing the choices here would import the sandbox for every command.
    drill.add_argument("scenario", help="Failure scenario to inject (node-failure, dns-cascade, …; "
                                        "a wrong name lists them all).")
    drill.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as error:
        print(error.user_text(), file=sys.stderr)
        return EXIT_CONFIG
    except IncidentBotError as error:
        print(f"error: {error.user_text()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
