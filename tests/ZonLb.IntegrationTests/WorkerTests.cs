using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>
/// Two workers on veths with two queues: request and reply of a connection may arrive on different queues
/// (and so at different workers) and must still be translated by the worker that owns the connection.
/// </summary>
[Collection("dataplane")]
public class WorkerTests
{
    private static string TwoWorkers(string affinity = "") => Topology.DefaultConfig($"""

        [engine]
        workers = 2
        {affinity}
        """);

    [Fact]
    public async Task Two_workers_serve_many_flows_arriving_on_either_queue()
    {
        using var t = Topology.Create(queues: 2);
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, TwoWorkers("cpu_affinity = [0, 1]")).WaitUntilRunning();
        Assert.Contains("2 worker(s) pinned to CPU(s) 0,1", lb.Output);

        var bodies = await Task.WhenAll(Enumerable.Range(0, 40).Select(_ => Clients.HttpGet(t.Client, Topology.Vip, 80, "/bytes/100000")));
        Assert.All(bodies, b => Assert.Equal(100_000, b.Count(c => c == 'x')));
        for (int i = 0; i < 10; i++)
            Assert.StartsWith("echo:u", await Clients.UdpRequest(t.Client, Topology.Vip, 5353, $"u{i}"));
        var ping = t.Client.Exec(TimeSpan.FromSeconds(20), "ping", "-c", "5", "-i", "0.2", "-W", "2", Topology.Vip);
        Assert.True(ping.ExitCode == 0, ping.Output);

        var stats = JsonNode.Parse(lb.Control("stats", "--json").Stdout)!;
        var workers = stats["workers"]!.AsArray();
        Assert.Equal(2, workers.Count);
        Assert.All(workers, w => Assert.True(w!["rx_packets"]!.GetValue<long>() > 0, "every worker received frames"));
        Assert.True(stats["handed_off"]!.GetValue<long>() > 0, "some frames arrived at the worker that does not own their connection");
        Assert.Equal(51, stats["new_connections"]!.GetValue<long>());

        Assert.Equal(0, lb.Stop());
        Assert.Matches(@"frames_unaccounted=0\b", lb.Output);
        Assert.DoesNotMatch(new Regex(@"drops: .*(no_connection|no_service)"), lb.Output);
    }

    [Fact]
    public async Task A_worker_with_a_fifo_priority_runs_sched_fifo_and_forwards()
    {
        using var t = Topology.Create();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig("""

            [engine]
            worker_fifo_priority = 10
            """)).WaitUntilRunning();

        // /proc/PID/task/TID/stat: field 40 is rt_priority, 41 the policy (1 = SCHED_FIFO); the name ends at ')'
        string worker = Directory.GetDirectories($"/proc/{lb.Pid}/task")
            .Single(d => File.ReadAllText(Path.Combine(d, "comm")).Trim() == "zonlb-worker-0");
        string[] fields = File.ReadAllText(Path.Combine(worker, "stat")).Split(')')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(("10", "1"), (fields[40 - 3], fields[41 - 3]));

        Assert.Equal(1_000_000, (await Clients.HttpGet(t.Client, Topology.Vip, 80, "/bytes/1000000")).Count(c => c == 'x'));
        Assert.StartsWith("echo:fifo", await Clients.UdpRequest(t.Client, Topology.Vip, 5353, "fifo"));
        Assert.Equal(0, lb.Stop());
        Assert.Matches(@"frames_unaccounted=0\b", lb.Output);
    }

    [Fact]
    public void A_fifo_priority_the_process_may_not_take_is_refused_before_it_runs()
    {
        using var t = Topology.Create();
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig("""

            [engine]
            worker_fifo_priority = 10
            """), wrapper: new[] { "setpriv", "--bounding-set=-sys_nice", "--inh-caps=-sys_nice" });
        Assert.Equal(2, lb.WaitForExit(TimeSpan.FromSeconds(30)));
        Assert.Contains("error: worker 0: sched_setscheduler(SCHED_FIFO, priority 10) for engine.worker_fifo_priority", lb.Output);
        Assert.Contains("Operation not permitted", lb.Output);
        Assert.DoesNotContain("running with", lb.Output);
        Assert.Empty(Topology.InterfacesWithXdp(t.Lb));
    }

    [Fact]
    public void Under_taskset_a_cpu_affinity_naming_the_cpu_the_process_may_use_is_accepted_and_another_is_refused()
    {
        string config = Path.Combine(Path.GetTempPath(), $"zlbt-affinity-{Guid.NewGuid():N}.toml");
        try
        {
            File.WriteAllText(config, Topology.DefaultConfig("[engine]\ncpu_affinity = [1]"));
            var allowed = Command.Run("taskset", new[] { "-c", "1", "dotnet", ZonLbProcess.CliPath, "check", "--offline", "--config", config }, TimeSpan.FromSeconds(60));
            Assert.True(allowed.ExitCode == 0, allowed.Output);

            var refused = Command.Run("taskset", new[] { "-c", "0", "dotnet", ZonLbProcess.CliPath, "check", "--offline", "--config", config }, TimeSpan.FromSeconds(60));
            Assert.NotEqual(0, refused.ExitCode);
            Assert.Contains("cpu_affinity", refused.Output);
            Assert.Contains("CPU 1 is not one this process may run on (CPUs 0)", refused.Output);
        }
        finally
        {
            File.Delete(config);
        }
    }

    [Fact]
    public void More_workers_than_queues_is_refused_naming_the_interface()
    {
        using var t = Topology.Create();
        using var lb = ZonLbProcess.Start(t.Lb, TwoWorkers());
        Assert.Equal(2, lb.WaitForExit(TimeSpan.FromSeconds(30)));
        Assert.Contains("interface lbc has 1 RX queue(s) but engine.workers = 2", lb.Output);
        Assert.Empty(Topology.InterfacesWithXdp(t.Lb));
    }
}
