using System.Text.Json;
using ZonLb.Native.Bpf;
using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>
/// zonlb_xdp beside another XDP program on the same interface: a counting program of the test's own
/// (Bpf/count_frames.c), compiled here and loaded with xdp-loader, libxdp's own tool. Through libxdp's dispatcher both
/// run, each frame going through the counter first; without the dispatcher (the kernel's one program per interface)
/// zonlb-afxdp refuses the interface, names the program and leaves it there. The dispatcher's state lives in a bpffs
/// the test mounts for itself (LIBXDP_BPFFS), as `ip netns exec` hides the host's.
/// </summary>
[Collection("dataplane")]
public class XdpCoexistenceTests
{
    [FactWhenKernelLoadsFreplace]
    public async Task A_program_loaded_with_xdp_loader_keeps_counting_while_zonlb_forwards_on_the_same_interface()
    {
        using var t = Topology.Create();
        using var bpffs = new TestBpfFs();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        bpffs.XdpLoader(t.Lb, "load", "-m", "native", "lbc", CountingProgram());
        Assert.Contains("xdp_dispatcher", bpffs.XdpLoader(t.Lb, "status", "lbc"));

        using (var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig(), environment: bpffs.Environment).WaitUntilRunning())
        {
            Assert.Contains("lbc (ifindex", lb.Output);
            Assert.Contains("through libxdp's dispatcher (2 program(s)", lb.Output);
            long before = FramesSeen(t.Lb);
            for (int i = 0; i < 3; i++)
                Assert.StartsWith("hello from backend", await Clients.HttpGet(t.Client, Topology.Vip, 80));
            long seen = FramesSeen(t.Lb) - before;
            Assert.True(seen >= 3 * 5, $"the counting program saw {seen} frames of 3 HTTP exchanges through the VIP"); // SYN, ACK, request, ACK, FIN at least
            string status = bpffs.XdpLoader(t.Lb, "status", "lbc");
            Assert.Contains("count_frames", status);
            Assert.Contains("zonlb_xdp", status);
            Assert.Equal(0, lb.Stop());
        }

        string after = bpffs.XdpLoader(t.Lb, "status", "lbc");
        Assert.Contains("count_frames", after); // zonlb-afxdp detached only itself
        Assert.DoesNotContain("zonlb_xdp", after);
        long counted = FramesSeen(t.Lb);
        t.Client.Exec(TimeSpan.FromSeconds(10), "ping", "-c", "2", "-i", "0.2", "-W", "1", Topology.Vip);
        Assert.True(FramesSeen(t.Lb) > counted, "the counting program stopped counting when zonlb-afxdp left");
    }

    [Fact]
    public void Beside_a_program_attached_without_the_dispatcher_zonlb_refuses_naming_it_and_leaves_it_attached()
    {
        using var t = Topology.Create();
        using var bpffs = new TestBpfFs();
        bpffs.XdpLoader(t.Lb, "load", "-m", "native", "lbc", CountingProgram(), skipDispatcher: true);
        Assert.DoesNotContain("xdp_dispatcher", bpffs.XdpLoader(t.Lb, "status", "lbc"));

        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig(), environment: bpffs.Environment);
        int? code = lb.WaitForExit(TimeSpan.FromSeconds(30));

        Assert.Equal(2, code);
        Assert.Contains("interface lbc already has an XDP program attached without libxdp's dispatcher: 'count_frames'", lb.Output);
        Assert.Equal(new[] { "lbc" }, Topology.InterfacesWithXdp(t.Lb)); // the counter, still there
        Assert.Contains("count_frames", bpffs.XdpLoader(t.Lb, "status", "lbc"));
    }

    /// <summary>The counting program's count so far (its array map, read with bpftool).</summary>
    private static long FramesSeen(NetworkNamespace ns)
    {
        var r = ns.Exec(TimeSpan.FromSeconds(10), "bpftool", "-j", "map", "dump", "name", "frames_seen");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        long total = 0;
        foreach (var entry in doc.RootElement.EnumerateArray())
        {
            var value = entry.GetProperty("value");
            total += value.ValueKind == JsonValueKind.Number ? value.GetInt64() : long.Parse(value.GetString()!);
        }
        return total;
    }

    /// <summary>Bpf/count_frames.c compiled with the project's BPF flags (once per test run).</summary>
    private static string CountingProgram()
    {
        lock (Compiled)
        {
            if (Compiled.Count == 0)
            {
                string root = Command.RepoRoot();
                string output = Path.Combine(Path.GetTempPath(), $"zlbt-count-frames-{Environment.ProcessId}.o");
                string flags = Command.Check(Path.Combine(root, "bpf", "cflags.sh")).Trim();
                var args = flags.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
                args.AddRange(new[] { "-c", Path.Combine(root, "tests", "ZonLb.IntegrationTests", "Bpf", "count_frames.c"), "-o", output });
                var r = Command.Run("clang", args, TimeSpan.FromSeconds(60));
                Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
                Compiled.Add(output);
            }
            return Compiled[0];
        }
    }

    private static readonly List<string> Compiled = new();

    /// <summary>A BPF filesystem of the test's own, for libxdp's dispatcher state; unmounted at the end.</summary>
    private sealed class TestBpfFs : IDisposable
    {
        private readonly string _path = Path.Combine(Path.GetTempPath(), $"zlbt-bpffs-{Guid.NewGuid():N}"[..26]);

        public TestBpfFs()
        {
            Directory.CreateDirectory(_path);
            Command.Check("mount", "-t", "bpf", "bpf", _path);
            Environment = new Dictionary<string, string> { ["LIBXDP_BPFFS"] = _path };
        }

        public IReadOnlyDictionary<string, string> Environment { get; }

        /// <summary>Runs xdp-loader in ns with this bpffs (and, asked, without the dispatcher); returns its output.</summary>
        public string XdpLoader(NetworkNamespace ns, params string[] args) => XdpLoader(ns, args, skipDispatcher: false);

        public string XdpLoader(NetworkNamespace ns, string verb, string mode, string modeValue, string ifName, string file, bool skipDispatcher) =>
            XdpLoader(ns, new[] { verb, mode, modeValue, ifName, file }, skipDispatcher);

        private string XdpLoader(NetworkNamespace ns, string[] args, bool skipDispatcher)
        {
            var command = new List<string> { "env", $"LIBXDP_BPFFS={_path}" };
            if (skipDispatcher)
                command.Add("LIBXDP_SKIP_DISPATCHER=1");
            command.Add("xdp-loader");
            command.AddRange(args);
            var r = ns.Exec(TimeSpan.FromSeconds(30), command.ToArray());
            Assert.True(r.ExitCode == 0, $"xdp-loader {string.Join(' ', args)}: {r.Stdout}{r.Stderr}");
            return r.Stdout;
        }

        public void Dispose()
        {
            Command.Run("umount", _path);
            try
            {
                Directory.Delete(_path);
            }
            catch (IOException)
            {
            }
        }
    }
}

/// <summary>A fact that runs only where the kernel loads freplace programs, of which libxdp's dispatcher is made;
/// elsewhere it is reported skipped, with the reason (libbpf's probe says no: a kernel without BPF trampolines, or
/// locked down against them).</summary>
public sealed class FactWhenKernelLoadsFreplaceAttribute : FactAttribute
{
    public FactWhenKernelLoadsFreplaceAttribute()
    {
        if (!XdpDispatcher.KernelLoadsFreplace())
            Skip = "this kernel refuses freplace (BPF_PROG_TYPE_EXT) programs, so libxdp has no dispatcher here (libbpf_probe_bpf_prog_type)";
    }
}
