"""``python -m k8s_incident_bot`` runs the command line."""

from k8s_incident_bot.cli import main

raise SystemExit(main())
