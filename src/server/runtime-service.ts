import type { RuntimeServiceHandlers } from '../api/generated/runtime/v1/RuntimeService.js';
import type { ContainerEvents } from '../container/events.js';
import type { ContainerService } from '../container/service.js';
import type { StatsService } from '../container/stats.js';
import type { RuntimeInfoService } from '../info/service.js';
import type { MetricsService } from '../metrics/service.js';
import type { SandboxService } from '../sandbox/service.js';
import type { StreamingService } from '../streaming/service.js';
import { eventStream, unary, unimplemented, unimplementedStream, type WrapOptions } from './wrap.js';
import { secondsToDelay } from '../util/timer.js';

export interface RuntimeServices {
  info: RuntimeInfoService;
  sandboxes: SandboxService;
  containers: ContainerService;
  stats: StatsService;
  metrics: MetricsService;
  events: ContainerEvents;
  streaming: StreamingService;
}

/**
 * The RuntimeService handlers: each one only unpacks its request and calls a service.
 * RPCs not served yet answer UNIMPLEMENTED at once.
 */
export function runtimeServiceHandlers(services: RuntimeServices, options: WrapOptions): RuntimeServiceHandlers {
  const { info, sandboxes, containers, stats, metrics, events, streaming } = services;
  return {
    Version: unary('Version', options, async () => info.version()),
    Status: unary('Status', options, async (req) => info.status(req.verbose)),
    RuntimeConfig: unary('RuntimeConfig', options, async () => info.runtimeConfig()),
    UpdateRuntimeConfig: unary('UpdateRuntimeConfig', options, async (req) => info.updateRuntimeConfig(req)),

    RunPodSandbox: unary('RunPodSandbox', options, async (req, ctx) => ({
      pod_sandbox_id: await sandboxes.run(req.config, req.runtime_handler, ctx.log, ctx.signal),
    })),
    StopPodSandbox: unary('StopPodSandbox', options, async (req, ctx) => {
      await sandboxes.stop(req.pod_sandbox_id, ctx.log);
      return {};
    }),
    RemovePodSandbox: unary('RemovePodSandbox', options, async (req, ctx) => {
      await sandboxes.remove(req.pod_sandbox_id, ctx.log);
      return {};
    }),
    PodSandboxStatus: unary('PodSandboxStatus', options, (req) => sandboxes.status(req.pod_sandbox_id, req.verbose)),
    ListPodSandbox: unary('ListPodSandbox', options, async (req) => ({ items: sandboxes.list(req.filter) })),
    StreamPodSandboxes: unimplementedStream('StreamPodSandboxes'),
    UpdatePodSandboxResources: unary('UpdatePodSandboxResources', options, async (req, ctx) => {
      await sandboxes.updateResources(req.pod_sandbox_id, req.resources, req.overhead, ctx.log);
      return {};
    }),

    CreateContainer: unary('CreateContainer', options, async (req, ctx) => ({
      container_id: await containers.create(req, ctx.log, ctx.signal),
    })),
    StartContainer: unary('StartContainer', options, async (req, ctx) => {
      await containers.start(req.container_id, ctx.log);
      return {};
    }),
    StopContainer: unary('StopContainer', options, async (req, ctx) => {
      await containers.stop(req.container_id, secondsToDelay(req.timeout), ctx.log);
      return {};
    }),
    RemoveContainer: unary('RemoveContainer', options, async (req, ctx) => {
      await containers.remove(req.container_id, ctx.log);
      return {};
    }),
    ListContainers: unary('ListContainers', options, async (req) => ({ containers: containers.list(req.filter) })),
    StreamContainers: unimplementedStream('StreamContainers'),
    ContainerStatus: unary('ContainerStatus', options, (req) => containers.status(req.container_id, req.verbose)),
    UpdateContainerResources: unary('UpdateContainerResources', options, async (req, ctx) => {
      await containers.updateResources(req.container_id, req.linux, ctx.log);
      return {};
    }),
    ReopenContainerLog: unary('ReopenContainerLog', options, async (req) => {
      await containers.reopenLog(req.container_id);
      return {};
    }),
    ExecSync: unary('ExecSync', options, (req) => containers.execSync(req.container_id, req.cmd, secondsToDelay(req.timeout))),
    Exec: unary('Exec', options, async (req) => streaming.prepareExec(req)),
    Attach: unary('Attach', options, async (req) => streaming.prepareAttach(req)),
    PortForward: unary('PortForward', options, async (req) => streaming.preparePortForward(req)),
    ContainerStats: unary('ContainerStats', options, async (req) => ({ stats: await stats.containerStats(req.container_id) })),
    ListContainerStats: unary('ListContainerStats', options, async (req) => ({ stats: await stats.listContainerStats(req.filter) })),
    StreamContainerStats: unimplementedStream('StreamContainerStats'),
    PodSandboxStats: unary('PodSandboxStats', options, async (req) => ({ stats: await stats.podStats(req.pod_sandbox_id) })),
    ListPodSandboxStats: unary('ListPodSandboxStats', options, async (req) => ({ stats: await stats.listPodStats(req.filter) })),
    StreamPodSandboxStats: unimplementedStream('StreamPodSandboxStats'),
    CheckpointContainer: unimplemented('CheckpointContainer'),
    GetContainerEvents: eventStream('GetContainerEvents', options, (listener) => events.subscribe(listener)),
    ListMetricDescriptors: unary('ListMetricDescriptors', options, async () => ({ descriptors: metrics.descriptors() })),
    ListPodSandboxMetrics: unary('ListPodSandboxMetrics', options, async () => ({ pod_metrics: await metrics.podSandboxMetrics() })),
    StreamPodSandboxMetrics: unimplementedStream('StreamPodSandboxMetrics'),
  };
}
