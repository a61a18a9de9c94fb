"""MetaTrader 5 over REST: the client (mt5_rest), the simulator and the contract they share."""
