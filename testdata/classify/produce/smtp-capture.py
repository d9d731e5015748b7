# minimal SMTP capture server: writes each message's DATA to OUTDIR/N.eml
import socket, sys, os
out = sys.argv[2]; os.makedirs(out, exist_ok=True)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(5); n = 0
while True:
    c, _ = s.accept(); f = c.makefile("rb"); w = lambda x: c.sendall(x.encode() + b"\r\n")
    w("220 cap ESMTP")
    while True:
        l = f.readline()
        if not l: break
        cmd = l.decode("latin1").strip().upper()
        if cmd.startswith("DATA"):
            w("354 go"); data = []
            while True:
                d = f.readline()
                if d in (b".\r\n", b".\n", b""): break
                if d.startswith(b".."): d = d[1:]
                data.append(d.replace(b"\r\n", b"\n"))
            n += 1; open(os.path.join(out, "%03d.eml" % n), "wb").write(b"".join(data)); w("250 ok")
        elif cmd.startswith("QUIT"): w("221 bye"); break
        else: w("250 ok")
    c.close()
