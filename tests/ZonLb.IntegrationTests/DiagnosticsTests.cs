using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>`zonlb-afxdp trace` and `doctor`, on namespaces made for each test.</summary>
[Collection("dataplane")]
public class DiagnosticsTests
{
    [Fact]
    public async Task Trace_finds_the_seeds_dropped_syn_when_partial_checksum_repair_is_off()
    {
        using var t = Topology.Create();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        string config = Topology.DefaultConfig("\n[engine]\nrepair_partial_checksums = false\n");
        using var lb = ZonLbProcess.Start(t.Lb, config).WaitUntilRunning();

        var trace = Task.Run(() => t.Lb.Exec(TimeSpan.FromSeconds(60), "dotnet", ZonLbProcess.CliPath, "trace", "--config", lb.ConfigPath, "--seconds", "6"));
        await Task.Delay(2500); // the tracer attaches
        var curl = t.Client.Exec(TimeSpan.FromSeconds(20), "curl", "-sS", "-m", "2", $"http://{Topology.Vip}/");
        Assert.NotEqual(0, curl.ExitCode); // the SYN never gets an answer

        var r = await trace;
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Contains($"{t.Backend.Name} dev eth0 tcp {Topology.LbBackendSideIp}:", r.Stdout);
        Assert.Contains($"-> {Topology.BackendIp}:8080 reason TCP_CSUM at tcp_v4_rcv", r.Stdout);
        Assert.Contains("detached", r.Stdout);
    }

    [Fact]
    public async Task Trace_sees_nothing_of_ours_dropped_when_the_repair_is_on()
    {
        using var t = Topology.Create();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig()).WaitUntilRunning();
        var trace = Task.Run(() => t.Lb.Exec(TimeSpan.FromSeconds(60), "dotnet", ZonLbProcess.CliPath, "trace", "--config", lb.ConfigPath, "--service", "web", "--seconds", "5"));
        await Task.Delay(2500);
        for (int i = 0; i < 5; i++)
            Assert.StartsWith("hello from backend", await Clients.HttpGet(t.Client, Topology.Vip, 80));
        var r = await trace;
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.DoesNotContain("TCP_CSUM", r.Stdout);
        Assert.Contains("tracing kernel drops to or from", r.Stdout);
    }
}
