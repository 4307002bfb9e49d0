"""Running attempts on machines other than this one (a Ray cluster).

``protocol`` holds the plain records that cross between this machine and a
node, ``node`` the code that runs on the node, ``watchdog`` the process that
cleans up after a node-side attempt that died, and ``ray_backend`` the
engine's side. Only ``ray_backend`` and ``node`` import Ray.
"""
