"""好差评: ratings of every service, item, body and channel, and the closed loop on bad ratings."""
