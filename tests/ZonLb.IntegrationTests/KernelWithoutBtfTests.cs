using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>
/// A kernel without BTF (/sys/kernel/btf/vmlinux): everything builds and runs but the drop tracer, and `trace`
/// says why it cannot run. The build is pointed at a BTF file that does not exist (KERNEL_BTF), as such a
/// kernel would have it.
/// </summary>
public class KernelWithoutBtfTests
{
    [Fact]
    public void The_bpf_build_makes_the_steering_program_and_skips_the_tracer_saying_why()
    {
        string root = Command.RepoRoot();
        string output = Directory.CreateTempSubdirectory("zlbt-nobtf-").FullName;
        try
        {
            var r = Command.Run("bash", new[] { "-c", $"KERNEL_BTF=/nonexistent/vmlinux '{root}/bpf/build.sh' '{output}'" }, TimeSpan.FromSeconds(120));

            Assert.True(r.ExitCode == 0, r.Output);
            Assert.True(File.Exists(Path.Combine(output, "zonlb_xdp.o")), r.Output);
            Assert.False(File.Exists(Path.Combine(output, "zonlb_trace.o")), r.Output);
            Assert.Contains("/nonexistent/vmlinux not found: the kernel has no BTF, so the drop tracer (zonlb-afxdp trace) is not built", r.Stdout);
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }
    }

    [Fact]
    public void Trace_without_a_tracer_object_says_why_and_check_still_works()
    {
        // the program as built on a kernel without BTF: the same files, without bpf/zonlb_trace.o
        string copy = Directory.CreateTempSubdirectory("zlbt-nobtf-cli-").FullName;
        try
        {
            CopyDirectory(AppContext.BaseDirectory, copy);
            File.Delete(Path.Combine(copy, "bpf", "zonlb_trace.o"));
            Assert.True(File.Exists(Path.Combine(copy, "bpf", "zonlb_xdp.o")));
            string config = Path.Combine(copy, "zonlb.toml");
            File.WriteAllText(config, Topology.DefaultConfig());
            string cli = Path.Combine(copy, "zonlb-afxdp.dll");

            var trace = Command.Run("dotnet", new[] { cli, "trace", "--config", config, "--seconds", "1" }, TimeSpan.FromSeconds(60));
            var check = Command.Run("dotnet", new[] { cli, "check", "--offline", "--config", config }, TimeSpan.FromSeconds(60));

            Assert.True(trace.ExitCode == 1, trace.Output);
            Assert.Contains("error: trace cannot run: this build has no drop tracer", trace.Stderr);
            Assert.Contains("CONFIG_DEBUG_INFO_BTF=y", trace.Stderr);
            Assert.True(check.ExitCode == 0, check.Output);
        }
        finally
        {
            Directory.Delete(copy, recursive: true);
        }
    }

    private static void CopyDirectory(string from, string to)
    {
        foreach (var dir in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, dir)));
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
            File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)));
    }
}
