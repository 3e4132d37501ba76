using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Control;

namespace ZonLb.Cli.Commands;

/// <summary>Talks to a running `zonlb-afxdp run` over its control socket.</summary>
public static class ControlClient
{
    /// <summary>The socket path: --socket, else control_socket from --config, else the default.</summary>
    public static string ResolveSocket(string? socket, string? config)
    {
        if (socket != null)
            return socket;
        if (config != null)
            return ConfigLoader.LoadFile(config).ControlSocket;
        return LoadBalancerConfig.DefaultControlSocket;
    }

    /// <summary>Sends one request; returns the result node, or throws with the server's error.</summary>
    public static JsonNode? Call(string socketPath, string command, JsonObject? args = null, TimeSpan? timeout = null)
    {
        using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            s.Connect(new UnixDomainSocketEndPoint(socketPath));
        }
        catch (SocketException e)
        {
            throw new ControlException($"cannot reach zonlb-afxdp at {socketPath} ({e.Message}): is `zonlb-afxdp run` running, and are you root?");
        }
        s.ReceiveTimeout = (int)(timeout ?? TimeSpan.FromSeconds(30)).TotalMilliseconds;
        s.Send(Encoding.UTF8.GetBytes(ControlProtocol.Request(command, args) + "\n"));
        var response = new MemoryStream();
        var buf = new byte[65536];
        while (true)
        {
            int n;
            try
            {
                n = s.Receive(buf);
            }
            catch (SocketException e)
            {
                throw new ControlException($"no answer from {socketPath}: {e.Message}");
            }
            if (n == 0)
                break;
            response.Write(buf, 0, n);
            if (buf[n - 1] == (byte)'\n')
                break;
        }
        var node = JsonNode.Parse(Encoding.UTF8.GetString(response.ToArray())) as JsonObject
                   ?? throw new ControlException("malformed answer from the control socket");
        if (node["ok"]?.GetValue<bool>() != true)
            throw new ControlException(node["error"]?.GetValue<string>() ?? "request failed");
        return node["result"];
    }
}

public sealed class ControlException : Exception
{
    public ControlException(string message) : base(message) { }
}
