"""nerfprune: train NeRFs, prune them the Lottery-Ticket way, render them faster."""
