"""Who is calling and what they may do: accounts, passwords, tokens and the access decision."""
