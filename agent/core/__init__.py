"""Pure protocol cores: no asyncio, gRPC, SQLite, clock or randomness of their own."""
