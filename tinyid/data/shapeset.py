"""Shapeset-3x2: a generated data set of grey images holding one or two simple shapes.

Glorot & Bengio (2010, "Understanding the difficulty of training deep feedforward neural
networks", AISTATS) trained their deep networks on an unbounded stream of such images. This
module re-creates that stream from the paper's description:

* every image holds one or two objects, each a triangle, a parallelogram or an ellipse;
* every object has random shape parameters, scale, rotation, position and grey level;
* the label is the unordered multiset of shapes present, so there are 9 classes:
  3 single shapes and 6 pairs (same-shape pairs included), see :data:`SHAPESET_CLASSES`;
* the second object overlaps the first by at most half the area of the smaller of the two.

The generator is vectorized: all images are rasterized at once with half-plane tests
(polygons) and an implicit quadratic (ellipses) evaluated on the pixel grid.

Geometry
--------
Pixel ``(row i, column j)`` has its centre at ``(x, y) = (j + 1/2, i + 1/2)``; the image covers
``[0, size] x [0, size]``. An object lives inside the disk of radius ``r = scale * size / 2``
around its centre ``c``, with ``scale ~ U[0.2, 0.8]``; ``c`` is drawn uniformly from
``[r, size - r]^2``, so every object lies entirely inside the image. In the object's own frame
(unit disk, then rotated by ``theta ~ U[0, 2 pi)``):

* triangle: three vertices on the unit circle whose arcs are each at least 60 degrees
  (so every angle of the triangle is at least 30 degrees);
* parallelogram: the convex hull of ``+-d1, +-d2`` with half-diagonals ``d1 = (1, 0)`` and
  ``d2 = rho (cos phi, sin phi)``, ``rho ~ U[0.5, 1]``, ``phi ~ U[45, 135]`` degrees
  (rectangles, rhombi and squares are special cases);
* ellipse: semi-axes ``1`` and ``b ~ U[0.4, 1]``.

A point ``p`` is inside a convex polygon with counter-clockwise vertices ``v_k`` when

.. math::

    (v_{k+1} - v_k) \\times (p - v_k) \\ge 0 \\quad \\text{for every edge } k,

and inside an ellipse when ``u_1^2 + (u_2 / b)^2 <= 1`` with ``u = R(-theta) (p - c) / r``.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from tinyid.data._files import check_flag

__all__ = ["SHAPESET_CLASSES", "SHAPE_NAMES", "shapeset"]

#: The three object shapes; index = shape id.
SHAPE_NAMES = ("triangle", "parallelogram", "ellipse")

_TRIANGLE, _PARALLELOGRAM, _ELLIPSE = 0, 1, 2

#: Shapes present in each class (label = index). Pairs are unordered multisets.
_CLASS_SHAPES = (
    (_TRIANGLE,), (_PARALLELOGRAM,), (_ELLIPSE,),
    (_TRIANGLE, _TRIANGLE), (_TRIANGLE, _PARALLELOGRAM), (_TRIANGLE, _ELLIPSE),
    (_PARALLELOGRAM, _PARALLELOGRAM), (_PARALLELOGRAM, _ELLIPSE), (_ELLIPSE, _ELLIPSE),
)

#: Readable names of the 9 Shapeset-3x2 classes; the label of an image is the index here.
SHAPESET_CLASSES = (
    "triangle",
    "parallelogram",
    "ellipse",
    "two triangles",
    "triangle and parallelogram",
    "triangle and ellipse",
    "two parallelograms",
    "parallelogram and ellipse",
    "two ellipses",
)

#: Object scale (diameter of the disk holding the object, as a fraction of the image side).
SCALE_RANGE = (0.2, 0.8)
#: Grey level of each object (foreground) and of each image's background.
FOREGROUND_GREY_RANGE = (0.55, 1.0)
BACKGROUND_GREY_RANGE = (0.0, 0.45)
#: The second object may cover at most this fraction of the smaller object's area.
MAX_OVERLAP_FRACTION = 0.5

_MIN_TRIANGLE_ARC = np.pi / 3
_PARALLELOGRAM_DIAGONAL_RATIO_RANGE = (0.5, 1.0)
_PARALLELOGRAM_DIAGONAL_ANGLE_RANGE = (np.pi / 4, 3 * np.pi / 4)
_ELLIPSE_AXIS_RATIO_RANGE = (0.4, 1.0)
# Rejection rounds before giving up; each round accepts most pending objects, so the cap is
# only a guard against an infinite loop.
_MAX_REJECTION_ROUNDS = 1000
# Objects rasterized per block, to bound the size of the temporary (block, size, size) arrays.
_RASTER_BLOCK = 2048


def min_object_pixels(size):
    """Smallest pixel count an object may cover in a ``size x size`` image.

    Parameters
    ----------
    size : int
        Image side in pixels.

    Returns
    -------
    int
        ``max(4, ceil(size**2 / 100))``: 11 pixels for 32x32 images.
    """
    return max(4, -(-size * size // 100))


@dataclass
class _Poses:
    """Random parameters of ``m`` objects (one entry per object; unused ones are ignored).

    Attributes
    ----------
    shape : (m,) int array
        Shape id (index into :data:`SHAPE_NAMES`).
    center : (m, 2) float64 array
        Centre ``(x, y)`` in pixel units.
    radius : (m,) float64 array
        Radius of the disk holding the object, pixels.
    rotation : (m,) float64 array
        Rotation angle, radians.
    triangle_angles : (m, 3) float64 array
        Polar angles of the triangle's vertices in its own frame, increasing.
    diagonal_ratio, diagonal_angle : (m,) float64 arrays
        ``rho`` and ``phi`` of the parallelogram's second half-diagonal.
    axis_ratio : (m,) float64 array
        Minor over major semi-axis of the ellipse.
    grey : (m,) float64 array
        Grey level the object is painted with.
    """

    shape: np.ndarray
    center: np.ndarray
    radius: np.ndarray
    rotation: np.ndarray
    triangle_angles: np.ndarray
    diagonal_ratio: np.ndarray
    diagonal_angle: np.ndarray
    axis_ratio: np.ndarray
    grey: np.ndarray

    def replace_rows(self, rows, other):
        """Overwrite objects ``rows`` with all objects of ``other`` (same count as ``rows``)."""
        for name in self.__dataclass_fields__:
            getattr(self, name)[rows] = getattr(other, name)

    def take(self, rows):
        """The objects ``rows`` as a new :class:`_Poses`."""
        return _Poses(**{name: getattr(self, name)[rows] for name in self.__dataclass_fields__})


def _draw_poses(rng, shapes, size):
    """Draw every random parameter of objects with the given shapes.

    Parameters
    ----------
    rng : numpy.random.Generator
    shapes : (m,) int array
        Shape id of each object.
    size : int
        Image side in pixels.

    Returns
    -------
    _Poses
        ``m`` objects; every parameter is drawn for every object (whatever its shape) so the
        number of random draws does not depend on the shapes.
    """
    m = shapes.shape[0]
    radius = rng.uniform(*SCALE_RANGE, size=m) * (size / 2)
    center = radius[:, None] + rng.random((m, 2)) * (size - 2 * radius)[:, None]
    rotation = rng.uniform(0.0, 2 * np.pi, size=m)
    # Three arcs summing to 2 pi, each at least _MIN_TRIANGLE_ARC: a flat Dirichlet split of
    # what is left after the minimum (spacings of two uniform points on [0, 1]).
    cuts = np.sort(rng.random((m, 2)), axis=1)
    spacings = np.diff(cuts, axis=1, prepend=0.0, append=1.0)
    arcs = _MIN_TRIANGLE_ARC + (2 * np.pi - 3 * _MIN_TRIANGLE_ARC) * spacings
    triangle_angles = np.cumsum(arcs, axis=1) - arcs[:, :1]
    return _Poses(
        shape=np.asarray(shapes, dtype=np.int64),
        center=center,
        radius=radius,
        rotation=rotation,
        triangle_angles=triangle_angles,
        diagonal_ratio=rng.uniform(*_PARALLELOGRAM_DIAGONAL_RATIO_RANGE, size=m),
        diagonal_angle=rng.uniform(*_PARALLELOGRAM_DIAGONAL_ANGLE_RANGE, size=m),
        axis_ratio=rng.uniform(*_ELLIPSE_AXIS_RATIO_RANGE, size=m),
        grey=rng.uniform(*FOREGROUND_GREY_RANGE, size=m),
    )


def _polygon_masks(center, vertex_radius, vertex_angle, size):
    """Rasterize convex polygons given by vertices in polar form around their centres.

    Parameters
    ----------
    center : (m, 2) float array
        Polygon centres ``(x, y)``.
    vertex_radius, vertex_angle : (m, k) float arrays
        Vertex ``v = center + radius (cos angle, sin angle)``; angles increase with the vertex
        index (counter-clockwise order) and span less than a full turn.
    size : int
        Image side in pixels.

    Returns
    -------
    (m, size, size) bool array
        ``True`` where the pixel centre is inside the polygon (all edge tests non-negative).
    """
    coords = np.arange(size, dtype=np.float32) + np.float32(0.5)
    vx = center[:, 0:1] + vertex_radius * np.cos(vertex_angle)
    vy = center[:, 1:2] + vertex_radius * np.sin(vertex_angle)
    ex = np.roll(vx, -1, axis=1) - vx
    ey = np.roll(vy, -1, axis=1) - vy
    # Edge k: cross(e_k, p - v_k) = a x + b y + c with a = -ey, b = ex, c = ey vx - ex vy.
    a, b, c = -ey, ex, ey * vx - ex * vy
    inside = np.ones((center.shape[0], size, size), dtype=bool)
    for edge in range(vx.shape[1]):
        along_x = (a[:, edge, None] * coords).astype(np.float32)                   # (m, W)
        along_y = (b[:, edge, None] * coords + c[:, edge, None]).astype(np.float32)  # (m, H)
        inside &= (along_y[:, :, None] + along_x[:, None, :]) >= 0
    return inside


def _ellipse_masks(center, radius, rotation, axis_ratio, size):
    """Rasterize rotated ellipses.

    Parameters
    ----------
    center : (m, 2) float array
    radius : (m,) float array
        Major semi-axis, pixels.
    rotation : (m,) float array
        Angle of the major axis, radians.
    axis_ratio : (m,) float array
        Minor over major semi-axis.
    size : int

    Returns
    -------
    (m, size, size) bool array
        ``True`` where ``u1^2 + (u2 / axis_ratio)^2 <= 1``, ``u = R(-rotation) (p - c) / radius``.
    """
    coords = np.arange(size, dtype=np.float32) + np.float32(0.5)
    cos, sin = np.cos(rotation)[:, None], np.sin(rotation)[:, None]
    dx = (coords - center[:, 0:1]) / radius[:, None]          # (m, W)
    dy = (coords - center[:, 1:2]) / radius[:, None]          # (m, H)
    minor = axis_ratio[:, None]
    u1 = (sin * dy).astype(np.float32)[:, :, None] + (cos * dx).astype(np.float32)[:, None, :]
    u2 = ((cos * dy) / minor).astype(np.float32)[:, :, None] - ((sin * dx) / minor).astype(np.float32)[:, None, :]
    u1 *= u1
    u2 *= u2
    u1 += u2
    return u1 <= 1


def _rasterize(poses, size):
    """Masks of objects.

    Parameters
    ----------
    poses : _Poses
        ``m`` objects.
    size : int

    Returns
    -------
    (m, size, size) bool array
    """
    m = poses.shape.shape[0]
    masks = np.zeros((m, size, size), dtype=bool)
    for start in range(0, m, _RASTER_BLOCK):
        block = slice(start, min(start + _RASTER_BLOCK, m))
        shape = poses.shape[block]
        for shape_id in (_TRIANGLE, _PARALLELOGRAM, _ELLIPSE):
            rows = np.flatnonzero(shape == shape_id) + start
            if rows.size == 0:
                continue
            center, radius, rotation = poses.center[rows], poses.radius[rows], poses.rotation[rows]
            if shape_id == _TRIANGLE:
                masks[rows] = _polygon_masks(
                    center, np.repeat(radius[:, None], 3, axis=1),
                    poses.triangle_angles[rows] + rotation[:, None], size)
            elif shape_id == _PARALLELOGRAM:
                rho, phi = poses.diagonal_ratio[rows], poses.diagonal_angle[rows]
                ones = np.ones_like(rho)
                vertex_radius = radius[:, None] * np.stack([ones, rho, ones, rho], axis=1)
                vertex_angle = rotation[:, None] + np.stack(
                    [0 * phi, phi, np.pi + 0 * phi, np.pi + phi], axis=1)
                masks[rows] = _polygon_masks(center, vertex_radius, vertex_angle, size)
            else:
                masks[rows] = _ellipse_masks(center, radius, rotation, poses.axis_ratio[rows], size)
    return masks


def _acceptable(masks, first_masks, min_pixels):
    """Which objects satisfy the area rule and, for second objects, the overlap rule.

    Parameters
    ----------
    masks : (m, size, size) bool array
        Candidate objects.
    first_masks : (m, size, size) bool array or None
        The first object of the same images, when ``masks`` are second objects.
    min_pixels : int

    Returns
    -------
    (m,) bool array
        ``area >= min_pixels`` and, when ``first_masks`` is given,
        ``overlap <= MAX_OVERLAP_FRACTION * min(area, first_area)`` (areas in pixels).
    """
    area = masks.sum(axis=(1, 2))
    ok = area >= min_pixels
    if first_masks is not None:
        first_area = first_masks.sum(axis=(1, 2))
        overlap = (masks & first_masks).sum(axis=(1, 2))
        ok &= overlap <= MAX_OVERLAP_FRACTION * np.minimum(area, first_area)
    return ok


def _place_objects(rng, shapes, size, first_masks=None):
    """Draw objects until every one satisfies :func:`_acceptable` (vectorized rejection).

    Parameters
    ----------
    rng : numpy.random.Generator
    shapes : (m,) int array
    size : int
    first_masks : (m, size, size) bool array or None
        Masks of the objects already in the same images; only the new objects are redrawn.

    Returns
    -------
    poses : _Poses
        ``m`` accepted objects.
    masks : (m, size, size) bool array
    """
    min_pixels = min_object_pixels(size)
    poses = _draw_poses(rng, shapes, size)
    masks = _rasterize(poses, size)
    pending = np.flatnonzero(~_acceptable(masks, first_masks, min_pixels))
    for _ in range(_MAX_REJECTION_ROUNDS):
        if pending.size == 0:
            return poses, masks
        retry = _draw_poses(rng, shapes[pending], size)
        retry_masks = _rasterize(retry, size)
        ok = _acceptable(retry_masks, None if first_masks is None else first_masks[pending], min_pixels)
        poses.replace_rows(pending[ok], retry.take(ok))
        masks[pending[ok]] = retry_masks[ok]
        pending = pending[~ok]
    raise RuntimeError(
        f"could not place {pending.size} Shapeset objects within {_MAX_REJECTION_ROUNDS} rounds "
        f"(size={size}); this should not happen, please report it")


def _check_count(value, name, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r} of type {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def _check_seed(seed):
    """A non-negative int or a non-empty sequence of non-negative ints (``default_rng`` entropy)."""
    items = seed if isinstance(seed, (list, tuple)) else [seed]
    valid = len(items) > 0 and all(
        isinstance(item, numbers.Integral) and not isinstance(item, (bool, np.bool_)) and item >= 0
        for item in items)
    if not valid:
        raise ValueError(
            f"seed must be a non-negative int or a non-empty list/tuple of non-negative ints, got {seed!r}")
    return [int(item) for item in seed] if isinstance(seed, (list, tuple)) else int(seed)


@dataclass(frozen=True, eq=False)
class _ShapesetDraw:
    """Everything drawn for ``n`` Shapeset images (internal; exposed to tests).

    Attributes
    ----------
    labels : (n,) int64 array
    shapes : (n, 2) int64 array
        Shape id of the first and second object; ``-1`` where an image has one object.
    masks : (n, 2, size, size) bool array
        Pixels covered by each object (second all ``False`` for single-object images).
    object_grey : (n, 2) float32 array
        Grey level of each object (``nan`` for the missing second object).
    background_grey : (n,) float32 array
    """

    labels: np.ndarray
    shapes: np.ndarray
    masks: np.ndarray
    object_grey: np.ndarray
    background_grey: np.ndarray

    def images(self):
        """Paint the images: background, then the first object, then the second on top.

        Returns
        -------
        (n, size, size) float32 array
        """
        first, second = self.masks[:, 0], self.masks[:, 1]
        images = np.empty(first.shape, dtype=np.float32)
        images[...] = self.background_grey[:, None, None]
        np.copyto(images, self.object_grey[:, 0, None, None], where=first)
        np.copyto(images, self.object_grey[:, 1, None, None], where=second)
        return images


def _draw_shapeset(n, rng, size):
    """Draw labels, objects and grey levels of ``n`` images.

    Parameters
    ----------
    n : int
    rng : numpy.random.Generator
    size : int

    Returns
    -------
    _ShapesetDraw
    """
    labels = rng.integers(0, len(_CLASS_SHAPES), size=n)
    class_first = np.array([shapes[0] for shapes in _CLASS_SHAPES])
    class_second = np.array([shapes[-1] if len(shapes) == 2 else -1 for shapes in _CLASS_SHAPES])
    shapes = np.stack([class_first[labels], class_second[labels]], axis=1)
    # For mixed pairs, choose at random which shape is drawn first (and may be partly hidden).
    swap = (rng.random(n) < 0.5) & (shapes[:, 1] >= 0)
    shapes[swap] = shapes[swap][:, ::-1]
    background = rng.uniform(*BACKGROUND_GREY_RANGE, size=n).astype(np.float32)

    first_poses, first_masks = _place_objects(rng, shapes[:, 0], size)
    masks = np.zeros((n, 2, size, size), dtype=bool)
    masks[:, 0] = first_masks
    grey = np.full((n, 2), np.nan, dtype=np.float32)
    grey[:, 0] = first_poses.grey
    pairs = np.flatnonzero(shapes[:, 1] >= 0)
    if pairs.size:
        second_poses, second_masks = _place_objects(rng, shapes[pairs, 1], size, first_masks[pairs])
        masks[pairs, 1] = second_masks
        grey[pairs, 1] = second_poses.grey
    return _ShapesetDraw(labels=labels.astype(np.int64), shapes=shapes.astype(np.int64),
                         masks=masks, object_grey=grey, background_grey=background)


def _shapeset_masks(n, seed=0, size=32):
    """The objects behind ``shapeset(n, seed, size)``, for tests and figures.

    Parameters
    ----------
    n : int
    seed : int or sequence of int
    size : int

    Returns
    -------
    _ShapesetDraw
        Its ``masks`` is ``(n, 2, size, size)`` bool and its ``images()`` equals
        ``shapeset(n, seed, size, flatten=False)``.
    """
    n = _check_count(n, "n", 1)
    size = _check_count(size, "size", 8)
    return _draw_shapeset(n, np.random.default_rng(_check_seed(seed)), size)


def shapeset(n, seed=0, size=32, *, flatten=True, standardize=False):
    """Generate ``n`` Shapeset-3x2 images and their labels.

    Each image holds one or two objects (triangle, parallelogram or ellipse) with random
    shape parameters, scale in ``[0.2, 0.8]`` of the image side, rotation, position and a
    foreground grey level in ``[0.55, 1.0]`` per object, on a background grey level in
    ``[0, 0.45]`` per image, so object pixels are ``> 0.5`` and background pixels ``< 0.5``.
    The label is uniform over the 9 classes of :data:`SHAPESET_CLASSES` (the unordered
    multiset of shapes present). Objects lie entirely inside the image and cover at least
    :func:`min_object_pixels` pixels. In two-object images the second object is painted on
    top of the first and the overlap rule holds on the pixel grid:

    .. math::

        |M_1 \\cap M_2| \\le \\tfrac12 \\min(|M_1|, |M_2|),

    where ``|M|`` counts the pixels of an object's mask, so at least half of the first object
    stays visible. Objects breaking a rule are redrawn (scale, position, rotation and shape
    parameters; for the second object only its own pose), vectorized over all images. The
    rejection makes second objects somewhat smaller on average than first ones (about 87 vs
    109 pixels at ``size=32``): large second objects collide more often.

    Parameters
    ----------
    n : int
        Number of images, ``>= 1``.
    seed : int or sequence of int, default 0
        Entropy for ``numpy.random.default_rng``; the same seed gives the same images.
        :func:`tinyid.data.load_dataset` draws train and test with ``[seed, 0]`` and ``[seed, 1]``.
    size : int, default 32
        Image side in pixels, ``>= 8``.
    flatten : bool, default True
        Return ``(n, size * size)`` rows instead of ``(n, size, size)`` images.
    standardize : bool, default False
        Return ``(x - mean) / std`` with the scalar mean and standard deviation of this
        generated array itself (there is no fixed training split for a generated stream;
        :func:`tinyid.data.load_dataset` instead applies the training draw's statistic to both
        splits).

    Returns
    -------
    x : (n, size * size) or (n, size, size) float32 array
        Grey levels in ``[0, 1]`` (or standardized).
    y : (n,) int64 array
        Labels in ``0 .. 8``, index into :data:`SHAPESET_CLASSES`.

    Examples
    --------
    >>> x, y = shapeset(4, seed=1)
    >>> x.shape, x.dtype, y.dtype
    ((4, 1024), dtype('float32'), dtype('int64'))
    """
    n = _check_count(n, "n", 1)
    size = _check_count(size, "size", 8)
    seed = _check_seed(seed)
    flatten = check_flag(flatten, "flatten")
    standardize = check_flag(standardize, "standardize")
    draw = _draw_shapeset(n, np.random.default_rng(seed), size)
    x = draw.images()
    if standardize:
        x = _standardize(x, *_mean_std(x))
    if flatten:
        x = x.reshape(n, size * size)
    return x, draw.labels


def _mean_std(x):
    """Scalar mean and standard deviation of ``x``, accumulated in float64."""
    mean = float(np.mean(x, dtype=np.float64))
    std = float(np.std(x, dtype=np.float64))
    return mean, std


def _standardize(x, mean, std):
    """``(x - mean) / std`` in float32.

    Parameters
    ----------
    x : float32 array, any shape
    mean, std : float
        Statistic to apply (``std > 0``).

    Returns
    -------
    float32 array, the shape of ``x``
    """
    if not std > 0:
        raise ValueError(f"cannot standardize with a standard deviation of {std}")
    out = np.subtract(x, np.float32(mean), dtype=np.float32)
    out /= np.float32(std)
    return out
