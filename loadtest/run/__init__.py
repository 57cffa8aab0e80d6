"""One run, wired stage by stage (runner), executed one way for every command (execute), and what
it leaves behind: records, summary, console table, live view, resume state."""
