"""Built-in task plugins. Each registers through the ``committee_tasks.tasks`` entry-point group,
exactly as a third-party plugin does (see setup.cfg)."""
