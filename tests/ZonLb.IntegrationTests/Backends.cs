using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>
/// Servers running inside the backend namespace: an HTTP/1.0 responder on TCP and a UDP echo, both telling
/// the caller which source address they saw (full NAT makes that the load balancer's address).
/// </summary>
public sealed class Backends : IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly TcpListener _tcp;
    private readonly UdpClient _udp;

    private readonly string _name;

    public Backends(NetworkNamespace ns, string address, int tcpPort, int udpPort)
    {
        _name = address;
        var ip = IPAddress.Parse(address);
        _tcp = ns.Run(() =>
        {
            var l = new TcpListener(ip, tcpPort);
            l.Start(256);
            return l;
        });
        _udp = ns.Run(() =>
        {
            var u = new UdpClient(new IPEndPoint(ip, udpPort));
            // 8 MiB of receive buffer (SO_RCVBUFFORCE, past rmem_max): a test process busy with a thousand clients
            // must not lose datagrams in its own server before the echo loop gets to them
            u.Client.SetRawSocketOption(SolSocket, SoRcvbufForce, BitConverter.GetBytes(8 << 20));
            return u;
        });
        _ = Task.Run(AcceptLoop);
        _ = Task.Run(UdpLoop);
    }

    private const int SolSocket = 1, SoRcvbufForce = 33;

    /// <summary>What GET /health answers: 200 when true, 503 when false.</summary>
    public volatile bool Healthy = true;

    /// <summary>Source endpoints the TCP server accepted connections from.</summary>
    public ConcurrentQueue<IPEndPoint> TcpPeers { get; } = new();

    public ConcurrentQueue<IPEndPoint> UdpPeers { get; } = new();

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket s;
            try
            {
                s = await _tcp.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = Task.Run(() => Serve(s));
        }
    }

    private async Task Serve(Socket s)
    {
        using (s)
        {
            var peer = (IPEndPoint)s.RemoteEndPoint!;
            var buf = new byte[8192];
            var request = new StringBuilder();
            try
            {
                while (!request.ToString().Contains("\r\n\r\n", StringComparison.Ordinal) && request.ToString() != "ECHO\n")
                {
                    int n = await s.ReceiveAsync(buf, SocketFlags.None, _stop.Token);
                    if (n == 0)
                        return;
                    request.Append(Encoding.ASCII.GetString(buf, 0, n));
                }
                string first = request.ToString().Split('\n')[0].Trim();
                if (!first.StartsWith("GET /health", StringComparison.Ordinal))
                    TcpPeers.Enqueue(peer); // every client request, not the load balancer's health checks
                if (first == "ECHO")
                {
                    // a long-lived connection: echo every line until the client closes
                    await s.SendAsync(Encoding.ASCII.GetBytes($"ECHO from {_name}\n"), SocketFlags.None, _stop.Token);
                    int m;
                    while ((m = await s.ReceiveAsync(buf, SocketFlags.None, _stop.Token)) > 0)
                        await s.SendAsync(buf.AsMemory(0, m), SocketFlags.None, _stop.Token);
                    return;
                }
                int size = 0;
                // "GET /bytes/N" asks for an N-byte body, to move more than one segment.
                if (first.StartsWith("GET /bytes/", StringComparison.Ordinal))
                    int.TryParse(first.Split(' ')[1].AsSpan("/bytes/".Length), out size);
                if (first.StartsWith("GET /health", StringComparison.Ordinal))
                {
                    string status = Healthy ? "200 OK" : "503 Service Unavailable";
                    await s.SendAsync(Encoding.ASCII.GetBytes($"HTTP/1.0 {status}\r\nContent-Length: 0\r\n\r\n"), SocketFlags.None, _stop.Token);
                    s.Shutdown(SocketShutdown.Both);
                    return;
                }
                string greeting = $"hello from backend {_name}, you are {peer.Address}:{peer.Port}\n";
                var head = Encoding.ASCII.GetBytes($"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {greeting.Length + size}\r\nConnection: close\r\n\r\n{greeting}");
                await s.SendAsync(head, SocketFlags.None, _stop.Token);
                var chunk = new byte[65536];
                Array.Fill(chunk, (byte)'x');
                for (int left = size; left > 0; left -= chunk.Length)
                    await s.SendAsync(chunk.AsMemory(0, Math.Min(left, chunk.Length)), SocketFlags.None, _stop.Token);
                s.Shutdown(SocketShutdown.Both);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
            }
        }
    }

    private async Task UdpLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var r = await _udp.ReceiveAsync(_stop.Token);
                UdpPeers.Enqueue(r.RemoteEndPoint);
                var reply = Encoding.ASCII.GetBytes($"echo:{Encoding.ASCII.GetString(r.Buffer)} from {r.RemoteEndPoint}");
                await _udp.SendAsync(reply, r.RemoteEndPoint, _stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
            }
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _tcp.Stop();
        _udp.Dispose();
    }
}
