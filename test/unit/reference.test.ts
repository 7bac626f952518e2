import { describe, expect, it } from 'vitest';
import { formatReference, isImageId, parseReference } from '../../src/image/reference.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('image references', () => {
  it.each([
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/library/busybox', 'docker.io/library/busybox:latest'],
    ['myuser/app:v1', 'docker.io/myuser/app:v1'],
    ['registry.k8s.io/pause:3.9', 'registry.k8s.io/pause:3.9'],
    ['127.0.0.1:5000/tscri-test/busybox:1.0', '127.0.0.1:5000/tscri-test/busybox:1.0'],
    ['localhost/app', 'localhost/app:latest'],
    ['localhost:5000/a/b/c', 'localhost:5000/a/b/c:latest'],
    [`busybox@${DIGEST}`, `docker.io/library/busybox@${DIGEST}`],
    [`busybox:1.36@${DIGEST}`, `docker.io/library/busybox:1.36@${DIGEST}`],
    ['gcr.io/k8s-staging-cri-tools/test-image-tags:1', 'gcr.io/k8s-staging-cri-tools/test-image-tags:1'],
    ['a/b__c/d-e--f/g.h', 'docker.io/a/b__c/d-e--f/g.h:latest'],
  ])('normalises %s', (input, expected) => {
    expect(formatReference(parseReference(input))).toBe(expected);
  });

  it('splits a reference into its parts', () => {
    expect(parseReference(`quay.io:443/org/app:v2@${DIGEST}`)).toEqual({ domain: 'quay.io:443', path: 'org/app', tag: 'v2', digest: DIGEST });
    expect(parseReference(`org/app@${DIGEST}`)).toEqual({ domain: 'docker.io', path: 'org/app', digest: DIGEST });
  });

  it.each([
    ['', /empty/],
    ['Busybox', /lowercase/],
    ['busybox:', /not a valid tag/],
    ['busybox:-bad', /not a valid tag/],
    ['busybox@sha256:1234', /not a digest/],
    [`busybox@sha256:${'A'.repeat(64)}`, /64 lowercase hex/],
    ['bad_host.io:port/app', /not a valid registry host/],
    ['a//b', /component ""/],
    ['app/', /component ""/],
    ['a/b!/c', /component "b!"/],
    [`${'a'.repeat(250)}/b`, /longer than 255/],
  ])('rejects %j', (input, message) => {
    expect(() => parseReference(input)).toThrow(message);
  });

  it('tells image ids from names', () => {
    expect(isImageId(DIGEST)).toBe(true);
    expect(isImageId('a'.repeat(64))).toBe(true);
    expect(isImageId('busybox')).toBe(false);
    expect(isImageId('sha256:abc')).toBe(false);
  });
});
