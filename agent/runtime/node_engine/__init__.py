"""The node engine: the daemon on one Node core and one driver (`engine: node`).

engine.py composes it (`NodeAgent`); transport.py, boundary.py, executors.py and
status.py are its ports and its input boundary; services.py its gRPC handlers.
"""
