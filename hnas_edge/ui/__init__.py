"""What the command line shows: progress bars and the rendering of results.

Used only by ``cli.py`` and ``quickstart.py``. The domain packages below report progress through
the callbacks their functions take (``on_progress``, ``SearchProgress``, a training
``Progress``); the functions here open a bar, hand the domain function its callback and print
what it returns. No logic beyond layout lives here.
"""
