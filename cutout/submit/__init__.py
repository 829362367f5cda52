"""The parts of ``cutout submit`` (the command itself is :mod:`cutout.commands.submit`)."""
