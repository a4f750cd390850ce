"""The NBD protocol on the wire, shared by both ends: its constants and structures (proto) and the small
client (client) that the nbd engine, the plan and the safety gate use to reach an export. The server
(iolab.nbd) builds on it; nothing here imports the server."""
