using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Routing;
using ZonLb.Engine.Runtime;

namespace ZonLb.Engine.Balancing;

/// <summary>
/// Active health checks of every backend of every service that has `health` configured, from the load
/// balancer's own network namespace (through the kernel, from an ephemeral port outside the NAT range, so the
/// answers never reach the data path). A backend that fails `fall` checks in a row is taken out of its
/// service's Maglev table for new flows; `rise` successes in a row bring it back. Changes are logged with the
/// reason. Backends added or removed at run time (backend add, reload) are picked up on the next round.
/// </summary>
internal sealed class HealthChecker : IDisposable
{
    private readonly Dataplane _dp;
    private readonly Action<string> _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly Dictionary<(string Service, string Backend), State> _states = new();
    private readonly Task _loop;

    private sealed class State
    {
        public bool Up = true;
        public int Successes, Failures;
        public long Due;
        public bool Running;
        public long Checks;
    }

    private readonly record struct Target(string Service, int Index, IPAddress Address, ushort Port, HealthConfig Health);

    public HealthChecker(Dataplane dp, Action<string> log)
    {
        _dp = dp;
        _log = log;
        _loop = Task.Run(Loop);
    }

    /// <summary>How often the loop looks for changed services when no check is due sooner.</summary>
    private const int IdleLookMs = 250;

    private async Task Loop()
    {
        var clock = Stopwatch.StartNew();
        long version = -1;
        object? config = null;
        var targets = new List<Target>();
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                // the targets follow the published services and the configuration; no worker is asked
                var table = _dp.Services;
                if (table.Version != version || !ReferenceEquals(_dp.Config, config))
                {
                    version = table.Version;
                    config = _dp.Config;
                    targets = _dp.HealthTargets().Select(t => new Target(t.Service, t.Index, t.Address, t.Port, t.Health)).ToList();
                }
            }
            catch (Exception e) when (e is InvalidOperationException or ObjectDisposedException)
            {
                return;
            }
            long now = clock.ElapsedMilliseconds;
            long next = now + IdleLookMs;
            foreach (var t in targets)
            {
                var key = (t.Service, $"{t.Address}:{t.Port}");
                if (!_states.TryGetValue(key, out var st))
                    _states[key] = st = new State { Due = now };
                if (!st.Running && now >= st.Due)
                {
                    st.Running = true;
                    st.Due = now + (long)(t.Health.IntervalSeconds * 1000);
                    _ = Task.Run(() => CheckAndRecord(t, st));
                }
                next = Math.Min(next, Math.Max(st.Due, now + 1));
            }
            try
            {
                await Task.Delay((int)(next - now), _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task CheckAndRecord(Target t, State st)
    {
        try
        {
            string? failure = await Check(t);
            st.Checks++;
            if (failure == null)
            {
                st.Failures = 0;
                st.Successes++;
                if (!st.Up && st.Successes >= t.Health.Rise)
                {
                    st.Up = true;
                    await Change(t, true, $"{st.Successes} check(s) passed");
                }
            }
            else
            {
                st.Successes = 0;
                st.Failures++;
                if (st.Up && st.Failures >= t.Health.Fall)
                {
                    st.Up = false;
                    await Change(t, false, $"{st.Failures} check(s) failed, last: {failure}");
                }
            }
        }
        catch (Exception e) when (e is InvalidOperationException or ObjectDisposedException)
        {
        }
        finally
        {
            st.Running = false;
        }
    }

    private async Task Change(Target t, bool up, string reason)
    {
        await _dp.SetBackendHealth(t.Service, t.Index, up, reason);
        _log($"health: service {t.Service}: backend {t.Address}:{t.Port} is {(up ? "up" : "down")}: {reason}");
    }

    /// <summary>One check; null when it passed, else what went wrong.</summary>
    public static async Task<string?> Check(IPAddress address, ushort port, HealthConfig h, CancellationToken stop = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(stop);
        cts.CancelAfter(TimeSpan.FromSeconds(h.TimeoutSeconds));
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await s.ConnectAsync(address, port, cts.Token);
            if (h.Kind == HealthKind.Tcp)
                return null;
            await s.SendAsync(Encoding.ASCII.GetBytes($"GET {h.Path} HTTP/1.0\r\nHost: {address}\r\nUser-Agent: zonlb-afxdp-health\r\n\r\n"), SocketFlags.None, cts.Token);
            var buf = new byte[512];
            var head = new StringBuilder();
            while (!head.ToString().Contains('\n'))
            {
                int n = await s.ReceiveAsync(buf, SocketFlags.None, cts.Token);
                if (n == 0)
                    break;
                head.Append(Encoding.ASCII.GetString(buf, 0, n));
            }
            string statusLine = head.ToString().Split('\n')[0].Trim();
            var parts = statusLine.Split(' ');
            if (parts.Length >= 2 && int.TryParse(parts[1], out int code) && code is >= 200 and < 400)
                return null;
            return statusLine.Length == 0 ? "empty HTTP answer" : $"HTTP status '{statusLine}'";
        }
        catch (OperationCanceledException)
        {
            return $"timeout after {h.TimeoutSeconds} s";
        }
        catch (SocketException e)
        {
            return $"connect: {e.Message}";
        }
    }

    private Task<string?> Check(Target t) => Check(t.Address, t.Port, t.Health, _stop.Token);

    public void Dispose()
    {
        _stop.Cancel();
        try
        {
            _loop.Wait(TimeSpan.FromSeconds(2));
        }
        catch (AggregateException)
        {
        }
    }
}
