"""``cutout remove``, split by concern: :mod:`cutout.commands.remove` (arguments and exit
codes), :mod:`.plan` (which input goes to which output, options, usage checks),
:mod:`.run` (the engine and the images) and :mod:`.report` (the per-input rows: the
``--report`` CSV, ``-v`` lines and the closing review count)."""
